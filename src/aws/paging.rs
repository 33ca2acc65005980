//! Reading a list to its end with `Limit`/`Marker`, as every KMS list call pages.

use std::future::Future;

/// One page of a list call's answer.
pub(super) struct Page<T> {
    pub items: Vec<T>,
    /// `Truncated`: more pages follow.
    pub truncated: bool,
    /// `NextMarker`: where the next page starts.
    pub marker: Option<String>,
}

/// Every item of a list, fetching page after page (`fetch` gets the marker of the page it is to
/// return, `None` for the first). A page that says more follow but gives no new marker would
/// fetch the same page for ever: it is an error, never a silent end.
pub(super) async fn all<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, String>>,
{
    let mut items = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = fetch(marker.clone()).await?;
        items.extend(page.items);
        if !page.truncated {
            return Ok(items);
        }
        match page.marker {
            None => return Err("a truncated page without a NextMarker".to_string()),
            Some(next) if marker.as_deref() == Some(next.as_str()) => {
                return Err(format!("NextMarker {next:?} came back twice"));
            }
            Some(next) => marker = Some(next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pages` served in order; each request must carry the marker the previous page gave.
    async fn serve(pages: Vec<(Vec<u32>, bool, Option<&str>)>) -> Result<Vec<u32>, String> {
        let expected: Vec<Option<String>> = std::iter::once(None)
            .chain(pages.iter().map(|p| p.2.map(str::to_string)))
            .collect();
        let mut served = pages.into_iter().enumerate();
        all(|marker| {
            let (i, (items, truncated, next)) = served.next().expect("asked past the last page");
            assert_eq!(marker, expected[i], "marker of request {i}");
            let page = Page {
                items,
                truncated,
                marker: next.map(str::to_string),
            };
            async move { Ok(page) }
        })
        .await
    }

    #[tokio::test]
    async fn one_page() {
        assert_eq!(serve(vec![(vec![1, 2], false, None)]).await, Ok(vec![1, 2]));
    }

    #[tokio::test]
    async fn follows_markers_to_the_last_page() {
        let pages = vec![
            (vec![1, 2], true, Some("a")),
            (vec![3, 4], true, Some("b")),
            (vec![5], false, None),
        ];
        assert_eq!(serve(pages).await, Ok(vec![1, 2, 3, 4, 5]));
    }

    #[tokio::test]
    async fn an_empty_last_page_ends_the_list() {
        let pages = vec![(vec![1], true, Some("a")), (vec![], false, None)];
        assert_eq!(serve(pages).await, Ok(vec![1]));
    }

    #[tokio::test]
    async fn truncated_without_a_marker_is_an_error() {
        let got = serve(vec![(vec![1], true, None)]).await;
        assert_eq!(
            got,
            Err("a truncated page without a NextMarker".to_string())
        );
    }

    #[tokio::test]
    async fn a_repeated_marker_is_an_error_not_a_loop() {
        let pages = vec![(vec![1], true, Some("a")), (vec![2], true, Some("a"))];
        assert_eq!(
            serve(pages).await,
            Err("NextMarker \"a\" came back twice".to_string())
        );
    }

    #[tokio::test]
    async fn a_failed_page_fails_the_list() {
        let got = all(|marker| async move {
            match marker {
                None => Ok(Page {
                    items: vec![1],
                    truncated: true,
                    marker: Some("a".to_string()),
                }),
                Some(_) => Err("access denied".to_string()),
            }
        })
        .await;
        assert_eq!(got, Err("access denied".to_string()));
    }
}
