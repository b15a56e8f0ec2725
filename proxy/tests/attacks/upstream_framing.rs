//! What an upstream's response framing and silence can do to a client. See main.rs.

use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn content_length_with_transfer_encoding_is_dropped() {
    // Content-Length says 5, the chunked body carries 26 bytes: RFC 9112 6.3, chunked wins.
    let (addr, task) = raw_upstream(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\nabcdefghijklmnop\r\na\r\nqrstuvwxyz\r\n0\r\n\r\n"
    })
    .await;
    let echo = upstream("echo", Behaviour::Echo).await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /both\n    upstream:\n      nodes: {{\"{addr}\": 1}}\n  - id: 2\n    uri: /normal\n    upstream:\n      nodes: {{\"{}\": 1}}\n#END\n",
        echo.node()
    );
    let gw = gateway(&config).await;
    for _ in 0..3 {
        let got = get(&gw.url("/both")).await;
        assert_eq!(got.status, 200);
        assert_eq!(&got.body[..], b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(got.header("content-length"), None);
        // The raw answer, as the client's wire sees it: chunked, no Content-Length.
        let raw_answer = raw(
            gw.addr(),
            b"GET /both HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        let head = raw_answer.split("\r\n\r\n").next().unwrap_or_default();
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{raw_answer}"
        );
        assert!(raw_answer.contains("qrstuvwxyz"), "{raw_answer}");
        assert_eq!(get(&gw.url("/normal")).await.status, 200);
    }
    task.abort();
}

#[tokio::test]
async fn hung_upstream_times_out_after_read_not_send_plus_read() {
    let hung = upstream("hung", Behaviour::Hang).await;
    let echo = upstream("echo", Behaviour::Echo).await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /hung\n    timeout: {{connect: 1, send: 3, read: 1}}\n    upstream:\n      nodes: {{\"{}\": 1}}\n  - id: 2\n    uri: /normal\n    upstream:\n      nodes: {{\"{}\": 1}}\n#END\n",
        hung.node(),
        echo.node()
    );
    let gw = gateway(&config).await;
    for method in [http::Method::GET, http::Method::POST] {
        let started = Instant::now();
        let got = request(method.clone(), &gw.url("/hung"), &[]).await;
        let waited = started.elapsed();
        assert_eq!(got.status, 504, "{method}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
            "{method}: {waited:?}, not send + read"
        );
        assert_eq!(get(&gw.url("/normal")).await.status, 200);
    }
    // A body: the read timeout starts once it has been sent, not before.
    let started = Instant::now();
    let req = http::Request::post(gw.url("/hung"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"some body",
        )))
        .expect("request");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 504);
    assert!(started.elapsed() < Duration::from_millis(2500));
}
