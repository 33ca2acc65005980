//! A store in memory: the test double of [`StateStore`], for tests of what sits above the stores
//! (the layout guard, migrate) without files or terraform. Behaves as the remote store does
//! where the difference matters: a state must be listed before it is pulled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Place, StateStore, StoreError};
use crate::config::Account;
use crate::render::Backend;

#[derive(Default)]
pub struct Memory {
    states: Mutex<BTreeMap<Place, Vec<u8>>>,
    pulls: AtomicUsize,
}

impl Memory {
    pub fn put(&self, place: Place, state: &Value) {
        let text = serde_json::to_vec(state).expect("JSON serializes");
        self.states.lock().unwrap().insert(place, text);
    }

    pub fn get(&self, place: &Place) -> Option<Value> {
        let states = self.states.lock().unwrap();
        states
            .get(place)
            .map(|t| serde_json::from_slice(t).expect("a state this store holds is JSON"))
    }

    pub fn places(&self) -> Vec<Place> {
        self.states.lock().unwrap().keys().cloned().collect()
    }
}

impl Backend for Memory {
    fn block(&self, _: &Account, state: &str) -> Value {
        json!({"type": "memory", "name": state})
    }

    fn lock_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

impl StateStore for Memory {
    fn is_remote(&self) -> bool {
        true
    }

    fn parallelism(&self) -> usize {
        2
    }

    fn check(&self, accounts: &BTreeSet<&String>) -> Result<String, String> {
        Ok(format!("{} account(s) in memory", accounts.len()))
    }

    fn outputs(&self, places: &[Place]) -> Vec<Result<Option<String>, String>> {
        places
            .iter()
            .map(|p| {
                Ok(self.get(p).and_then(|s| {
                    s["outputs"]
                        .as_object()
                        .filter(|o| !o.is_empty())
                        .map(|o| Value::Object(o.clone()).to_string())
                }))
            })
            .collect()
    }

    fn show(&self, place: &Place) -> String {
        format!("memory:{}", place.name)
    }

    fn exists(&self, places: &[Place]) -> Result<Vec<bool>, StoreError> {
        let states = self.states.lock().unwrap();
        Ok(places.iter().map(|p| states.contains_key(p)).collect())
    }

    fn check_states(&self, _: &[Place]) -> Result<(), StoreError> {
        Ok(())
    }

    fn pull(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.pulls.fetch_add(places.len(), Ordering::Relaxed);
        let states = self.states.lock().unwrap();
        places
            .iter()
            .map(|p| match states.get(p) {
                Some(text) => Ok(Some(text.clone())),
                None => Err(StoreError::Unreadable(format!(
                    "{} was pulled without being listed: a remote store would create it",
                    p.name
                ))),
            })
            .collect()
    }

    fn pulls(&self) -> usize {
        self.pulls.load(Ordering::Relaxed)
    }

    fn check_locks(&self, _: &[&Place]) -> Result<(), StoreError> {
        Ok(())
    }

    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        self.put(place.clone(), &Value::Object(json.clone()));
        Ok(())
    }

    fn clear(&self, place: &Place, _: &Map<String, Value>) -> Result<(), String> {
        self.states.lock().unwrap().remove(place);
        Ok(())
    }

    fn bootstrap(&self, _: bool) -> Result<(), String> {
        Ok(())
    }
}
