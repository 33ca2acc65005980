//! `--report run.html` opened in a real headless Chromium (Debian's `chromium`, installed by
//! `scripts/just setup`): the page loads from a file with the network off, a screenshot is taken
//! (kept under the target directory for a person to look at), and the DOM Chromium built says
//! every node is there with its status. Hostile terraform output stays inert text. The runs use
//! the fake terraform (tests/fake/terraform), so they take well under a second each.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Tree;

/// The base fleet plus a grant and a bucket on the prod key and a key depending on dev's.
fn fleet() -> Tree {
    Tree::new().with_consumers()
}

fn plan_html(tree: &Tree, report: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(tree.path("live"))
        .args(["plan", "--all", "--report", report])
        .current_dir(tree.root())
        .env(
            "ORCH_TERRAFORM",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform"),
        )
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_LIVE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run orch")
}

/// Runs headless Chromium on `page` with `args`, network and background services off, a fresh
/// profile, and a deadline; returns its stdout.
fn chromium(page: &Path, args: &[&str]) -> String {
    let Some(binary) = ["chromium", "chromium-browser"]
        .iter()
        .find_map(|name| which(name))
    else {
        panic!(
            "chromium is not on PATH: run `scripts/just setup` (as root it runs `apt-get install -y chromium`), or install Debian's `chromium` package yourself"
        );
    };
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait for chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium's output");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The DOM Chromium built from the page, after any script would have run.
fn dom(page: &Path) -> String {
    chromium(page, &["--dump-dom"])
}

/// A screenshot of the page, kept under the target directory; checks it is a real PNG.
fn screenshot(page: &Path, name: &str) -> PathBuf {
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report_html-{name}.png"));
    let _ = std::fs::remove_file(&shot);
    chromium(
        page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    shot
}

/// The `data-status` of the node table's row for `address` in a DOM dump.
fn row_status<'a>(dom: &'a str, address: &str) -> Option<&'a str> {
    let marker = format!("<tr class=\"node\" data-address=\"{address}\" data-status=\"");
    let start = dom.find(&marker)? + marker.len();
    dom[start..].split('"').next()
}

#[test]
fn every_node_is_on_the_page_with_its_status() {
    let tree = fleet();
    let json = plan_html(
        &tree,
        "run.json",
        &[("FAKE_TF_FAIL", "prod/us-east-1/data")],
    );
    assert_eq!(json.status.code(), Some(1));
    let out = plan_html(
        &tree,
        "run.html",
        &[("FAKE_TF_FAIL", "prod/us-east-1/data")],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = tree.path("run.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "the page must need no network and run no script"
    );
    let shot = screenshot(&page, "plan");
    let dom = dom(&page);
    // The same run as JSON names every node and its status; the page must show each one.
    let report: serde_json::Value =
        serde_json::from_str(&tree.read("run.json")).expect("the JSON report");
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    for node in nodes {
        let address = node["address"].as_str().unwrap();
        let status = node["status"].as_str().unwrap();
        assert_eq!(
            row_status(&dom, address),
            Some(status),
            "{address} in the DOM (screenshot {})",
            shot.display()
        );
        assert!(
            dom.contains(&format!(
                "href=\"#node-{address}\" data-address=\"{address}\" data-status=\"{status}\""
            )),
            "{address} is not in the grid"
        );
        assert!(dom.contains(&format!("<details id=\"node-{address}\"")));
    }
    for (address, status) in [
        ("prod/us-east-1/data", "failed"),
        (
            "prod/us-east-1/grant",
            "skipped (prod/us-east-1/data did not succeed)",
        ),
        ("dev/us-east-1/app", "changes"),
    ] {
        assert_eq!(row_status(&dom, address), Some(status));
    }
    // The grid: accounts down, regions across.
    for header in [
        "<th scope=\"row\">dev</th>",
        "<th scope=\"row\">prod</th>",
        "<th scope=\"col\">eu-west-1</th>",
        "<th scope=\"col\">us-east-1</th>",
    ] {
        assert!(dom.contains(header), "{header}");
    }
    // The failed node's output is unfolded, with terraform's error; the others are folded.
    assert!(dom.contains("<details id=\"node-prod/us-east-1/data\" open=\"\">"));
    assert!(dom.contains("Error: boom in prod/us-east-1/data"));
    assert!(dom.contains("<details id=\"node-dev/us-east-1/app\"><summary>"));
}

#[test]
fn hostile_terraform_output_stays_text() {
    let tree = fleet();
    let hostile = "<script>document.title='pwned';document.body.setAttribute('data-pwned','1')</script>\\n\
                   \"><img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">\\n\
                   </pre></details><b id=\"injected\">bold</b>\\n\
                   quote \" apostrophe ' ampersand &amp; escape \\033[31mred\\033[0m bell \\a nul-ish \\001 del \\177";
    let out = plan_html(&tree, "run.html", &[("FAKE_TF_PLAN_TEXT", hostile)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = tree.path("run.html");
    screenshot(&page, "hostile");
    let dom = dom(&page);
    assert!(
        dom.contains("<body>") && !dom.contains("data-pwned="),
        "a script or handler ran"
    );
    assert!(!dom.contains("<img"), "an element was injected");
    assert!(
        !dom.contains("<b id=\"injected\""),
        "an element was injected"
    );
    assert!(dom.contains("<title>orch plan "), "the title changed");
    assert_eq!(dom.matches("<script").count(), 0);
    // The text is all there, as text: markup escaped, control characters as visible pictures.
    assert!(dom.contains("&lt;script&gt;document.title='pwned'"));
    assert!(dom.contains("&lt;/pre&gt;&lt;/details&gt;&lt;b id=\"injected\"&gt;"));
    assert!(dom.contains("ampersand &amp;amp; escape \u{241b}[31mred"));
    assert!(dom.contains("bell \u{2407} nul-ish \u{2401} del \u{2421}"));
    for address in [
        "dev/us-east-1/app",
        "dev/us-east-1/late",
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
        "prod/us-east-1/grant",
        "prod/us-east-1/bucket",
    ] {
        assert_eq!(row_status(&dom, address), Some("changes"), "{address}");
    }
}

#[test]
fn a_report_is_json_html_or_markdown_by_its_extension() {
    let tree = fleet();
    for (file, says) in [
        (
            "run.txt",
            "`.txt` is none of them (name it run.json, run.html or run.md)",
        ),
        ("run", "`run` has no extension"),
        ("report.", "is none of them"),
    ] {
        let out = plan_html(&tree, file, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("--report <FILE>"),
            "{file}: {stderr}"
        );
        assert!(!tree.path(".orch").exists(), "{file}: something ran");
        assert!(!tree.path(file).exists());
    }
    let out = plan_html(&tree, "RUN.HTML", &[]);
    assert!(out.status.success());
    assert!(tree.read("RUN.HTML").starts_with("<!DOCTYPE html>"));
}
