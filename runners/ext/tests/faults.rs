//! Faults a real runner cannot produce on demand, against a fake runner on a real socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use runner_ext::ExtRunners;
use runner_protocol::KeyedRunner;
use runner_protocol::{
    Action, ErrorCode, ExtraInfo, Frame, HttpRequestReply, HttpResponseReply, MessageType,
    PrepareConf, Runner, RunnerError, Stop, TextEntry, ToGateway, ToRunner,
};

fn stop(id: u32, body: &str) -> ToGateway {
    ToGateway::HttpRequestReply(HttpRequestReply {
        id,
        action: Some(Action::Stop(Stop {
            status: 200,
            headers: vec![],
            body: Bytes::copy_from_slice(body.as_bytes()),
        })),
    })
}

/// A well-behaved fake: tokens 1, 2, ...; a request call is answered with Stop("token <t>").
async fn polite(mut c: FakeConn, tokens: Arc<AtomicU32>) {
    while let Some(msg) = c.read().await {
        match msg {
            ToRunner::PrepareConf(_) => {
                let t = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                c.write(ToGateway::ConfToken(t)).await;
            }
            ToRunner::HttpRequest(r) => {
                c.write(stop(r.id, &format!("token {}", r.conf_token)))
                    .await
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn conf() -> Vec<TextEntry> {
    vec![TextEntry::new("p", "{}")]
}

#[tokio::test]
async fn garbage_poisons_the_connection_and_the_next_call_uses_a_new_one() {
    init_tracing();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let f = fake(move |mut c| {
        let calls = c2.clone();
        async move {
            while let Some(msg) = c.read().await {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let ToRunner::HttpRequest(r) = msg else {
                    panic!()
                };
                if n == 0 {
                    c.write_raw(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
                } else {
                    c.write(stop(r.id, "ok")).await;
                }
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    let err = r.http_request(get("/"), &TestInfo::default()).await;
    assert!(matches!(err, Err(RunnerError::Protocol(_))), "{err:?}");
    let ok = r
        .http_request(get("/"), &TestInfo::default())
        .await
        .unwrap();
    assert!(matches!(ok.action, Some(Action::Stop(_))));
    assert_eq!(
        f.accepted.load(Ordering::SeqCst),
        2,
        "poisoned connection not reused"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn a_hanging_runner_times_out() {
    let f = fake(|mut c| async move { while c.read().await.is_some() {} });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let started = Instant::now();
    let err = within(
        5,
        runners
            .default_runner()
            .http_request(get("/"), &TestInfo::default()),
    )
    .await;
    assert!(matches!(err, Err(RunnerError::Timeout)), "{err:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn an_error_frame_is_a_runner_error_and_keeps_the_connection() {
    let f = fake(|mut c| async move {
        while c.read().await.is_some() {
            c.write(ToGateway::Error(ErrorCode::BadRequest)).await;
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    for _ in 0..3 {
        let err = r.http_request(get("/"), &TestInfo::default()).await;
        assert!(
            matches!(err, Err(RunnerError::Runner(ErrorCode::BadRequest))),
            "{err:?}"
        );
        let err = r
            .http_response(upstream_response(200), &TestInfo::default())
            .await;
        assert!(
            matches!(err, Err(RunnerError::Runner(ErrorCode::BadRequest))),
            "{err:?}"
        );
    }
    assert_eq!(
        f.accepted.load(Ordering::SeqCst),
        1,
        "one connection, reused"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn the_python_error_quirk_is_an_error_not_a_hang() {
    // An error framed with the request's type and an empty table.
    let f = fake(|mut c| async move {
        while let Some(msg) = c.read().await {
            let ty = match msg {
                ToRunner::PrepareConf(_) => MessageType::PrepareConf,
                ToRunner::HttpRequest(_) => MessageType::HttpReqCall,
                ToRunner::HttpResponse(_) => MessageType::HttpRespCall,
                ToRunner::ExtraInfoAnswer(_) => panic!(),
            };
            // The smallest valid buffer with an empty root table.
            let empty = ToGateway::HttpResponseReply(HttpResponseReply::default()).encode();
            c.write_frame(Frame {
                ty,
                payload: empty.payload,
            })
            .await;
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    let e = within(2, r.prepare_conf(PrepareConf::default())).await;
    assert!(
        matches!(e, Err(RunnerError::Protocol(ref m)) if m.contains("is 0")),
        "{e:?}"
    );
    let e = within(2, r.http_request(get("/"), &TestInfo::default())).await;
    assert!(
        matches!(e, Err(RunnerError::Protocol(ref m)) if m.contains("is 0")),
        "{e:?}"
    );
    let e = within(
        2,
        r.http_response(upstream_response(200), &TestInfo::default()),
    )
    .await;
    assert!(
        matches!(e, Err(RunnerError::Protocol(ref m)) if m.contains("is 0")),
        "{e:?}"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_prepare_reply_is_never_read_as_the_next_answer() {
    // Java quirk: the prepare reply comes twice, at once or a little later.
    for delay_ms in [0u64, 100] {
        let f = fake(move |mut c| async move {
            while let Some(msg) = c.read().await {
                match msg {
                    ToRunner::PrepareConf(_) => {
                        c.write(ToGateway::ConfToken(7)).await;
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        c.write(ToGateway::ConfToken(7)).await;
                    }
                    ToRunner::HttpRequest(r) => c.write(stop(r.id, "fresh")).await,
                    _ => panic!(),
                }
            }
        });
        let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
        let r = runners.default_runner();
        assert_eq!(r.prepare_conf(PrepareConf::default()).await.unwrap(), 7);
        tokio::time::sleep(Duration::from_millis(delay_ms + 50)).await;
        for _ in 0..3 {
            let reply = r
                .http_request(get("/"), &TestInfo::default())
                .await
                .unwrap();
            let Some(Action::Stop(s)) = reply.action else {
                panic!("{reply:?}")
            };
            assert_eq!(&s.body[..], b"fresh", "delay {delay_ms}");
        }
        runners.shutdown().await;
    }
}

#[tokio::test]
async fn pipelined_questions_are_answered_in_order() {
    let f = fake(|mut c| async move {
        while let Some(msg) = c.read().await {
            let ToRunner::HttpRequest(r) = msg else {
                panic!()
            };
            // Three questions back to back, before reading any answer.
            for q in [
                ExtraInfo::Var("a".into()),
                ExtraInfo::Var("missing".into()),
                ExtraInfo::ReqBody,
            ] {
                c.write(ToGateway::ExtraInfo(q)).await;
            }
            let mut got = Vec::new();
            for _ in 0..3 {
                let Some(ToRunner::ExtraInfoAnswer(a)) = c.read().await else {
                    panic!()
                };
                got.push(a.map_or("<none>".to_owned(), |b| {
                    String::from_utf8_lossy(&b).into_owned()
                }));
            }
            c.write(stop(r.id, &got.join("|"))).await;
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let mut info = TestInfo::default();
    info.vars.insert(b"a".to_vec(), Bytes::from_static(b"A"));
    info.req_body = Bytes::from_static(b"the body");
    let reply = runners
        .default_runner()
        .http_request(get("/"), &info)
        .await
        .unwrap();
    let Some(Action::Stop(s)) = reply.action else {
        panic!()
    };
    assert_eq!(&s.body[..], b"A|<none>|the body");
    assert_eq!(info.asked.lock().unwrap().len(), 3);
    runners.shutdown().await;
}

#[tokio::test]
async fn ids_start_at_one_and_header_and_payload_come_in_one_write() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let ids2 = ids.clone();
    let f = fake(move |mut c| {
        let ids = ids2.clone();
        async move {
            use tokio::io::AsyncReadExt;
            loop {
                // One read must hold the whole frame: header and payload were one write.
                let mut buf = vec![0u8; 64 * 1024];
                let n = c.stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                let len =
                    usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
                assert_eq!(n, 4 + len, "one write per frame");
                let frame = Frame {
                    ty: MessageType::try_from(buf[0]).unwrap(),
                    payload: Bytes::copy_from_slice(&buf[4..n]),
                };
                let ToRunner::HttpRequest(r) = ToRunner::decode(&frame).unwrap() else {
                    panic!()
                };
                ids.lock().unwrap().push(r.id);
                c.write(stop(r.id, "")).await;
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    for _ in 0..3 {
        r.http_request(get("/x"), &TestInfo::default())
            .await
            .unwrap();
    }
    assert_eq!(*ids.lock().unwrap(), [1, 2, 3]);
    runners.shutdown().await;
}

#[tokio::test]
async fn conf_token_not_found_reprepares_and_retries() {
    let tokens = Arc::new(AtomicU32::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (t2, r2) = (tokens.clone(), refused.clone());
    let f = fake(move |mut c| {
        let (tokens, refused) = (t2.clone(), r2.clone());
        async move {
            while let Some(msg) = c.read().await {
                match msg {
                    ToRunner::PrepareConf(p) => {
                        assert_eq!(&p.key[..], b"route#1#ext-plugin-pre-req#1");
                        let t = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                        c.write(ToGateway::ConfToken(t)).await;
                    }
                    // The first token is "expired" once.
                    ToRunner::HttpRequest(r) if r.conf_token == 1 => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        c.write(ToGateway::Error(ErrorCode::ConfTokenNotFound))
                            .await;
                    }
                    ToRunner::HttpRequest(r) => {
                        c.write(stop(r.id, &format!("token {}", r.conf_token)))
                            .await
                    }
                    _ => panic!(),
                }
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    let key = "route#1#ext-plugin-pre-req#1";
    r.prepare(key, conf());
    assert_eq!(within(2, r.token(key)).await.unwrap(), 1);
    let reply = r
        .request(key, get("/"), &TestInfo::default())
        .await
        .unwrap();
    let Some(Action::Stop(s)) = reply.action else {
        panic!()
    };
    assert_eq!(&s.body[..], b"token 2");
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(r.token(key).await.unwrap(), 2);
    runners.shutdown().await;
}

#[tokio::test]
async fn conf_token_not_found_gives_up_after_three_attempts() {
    let tokens = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (t2, c2) = (tokens.clone(), calls.clone());
    let f = fake(move |mut c| {
        let (tokens, calls) = (t2.clone(), c2.clone());
        async move {
            while let Some(msg) = c.read().await {
                match msg {
                    ToRunner::PrepareConf(_) => {
                        let t = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                        c.write(ToGateway::ConfToken(t)).await;
                    }
                    ToRunner::HttpResponse(_) => {
                        calls.fetch_add(1, Ordering::SeqCst);
                        c.write(ToGateway::Error(ErrorCode::ConfTokenNotFound))
                            .await;
                    }
                    _ => panic!(),
                }
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    r.prepare("k", conf());
    let err = within(
        3,
        r.response("k", upstream_response(200), &TestInfo::default()),
    )
    .await;
    assert!(
        matches!(err, Err(RunnerError::Runner(ErrorCode::ConfTokenNotFound))),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "3 attempts in all");
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        3,
        "a fresh prepare before each retry"
    );
    runners.shutdown().await;
}

/// A fake whose prepares take `delay`, counting prepares per key.
fn slow_preparer(delay: Duration, prepares: Arc<Mutex<Vec<String>>>) -> Fake {
    let tokens = Arc::new(AtomicU32::new(0));
    fake(move |mut c| {
        let (tokens, prepares) = (tokens.clone(), prepares.clone());
        async move {
            while let Some(msg) = c.read().await {
                match msg {
                    ToRunner::PrepareConf(p) => {
                        prepares
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&p.key).into_owned());
                        tokio::time::sleep(delay).await;
                        let t = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                        c.write(ToGateway::ConfToken(t)).await;
                    }
                    ToRunner::HttpRequest(r) => {
                        c.write(stop(r.id, &format!("token {}", r.conf_token)))
                            .await
                    }
                    _ => panic!(),
                }
            }
        }
    })
}

#[tokio::test]
async fn concurrent_requests_share_one_in_flight_prepare() {
    let prepares = Arc::new(Mutex::new(Vec::new()));
    let f = slow_preparer(Duration::from_millis(200), prepares.clone());
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner().clone();
    r.prepare("k", conf());
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.request("k", get("/"), &TestInfo::default()).await })
        })
        .collect();
    for c in calls {
        let reply = within(3, c).await.unwrap().unwrap();
        let Some(Action::Stop(s)) = reply.action else {
            panic!()
        };
        assert_eq!(&s.body[..], b"token 1");
    }
    assert_eq!(*prepares.lock().unwrap(), ["k"], "one prepare for the key");
    // The same conf again is a no-op; another conf replaces the entry.
    r.prepare("k", conf());
    r.prepare("k", vec![TextEntry::new("p", "{\"v\":2}")]);
    assert_eq!(within(2, r.token("k")).await.unwrap(), 2);
    runners.shutdown().await;
}

#[tokio::test]
async fn prepares_of_different_keys_run_in_parallel_and_eagerly() {
    let prepares = Arc::new(Mutex::new(Vec::new()));
    let f = slow_preparer(Duration::from_millis(300), prepares.clone());
    let runners = ExtRunners::start(&connect_config(&f.path, "pool_size: 8")).unwrap();
    let r = runners.default_runner();
    let started = Instant::now();
    for i in 0..5 {
        r.prepare(&format!("route#{i}#ext-plugin-pre-req#1"), conf());
    }
    // Eager: the runner sees the prepares without any request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(prepares.lock().unwrap().len(), 5);
    for i in 0..5 {
        within(2, r.token(&format!("route#{i}#ext-plugin-pre-req#1")))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "parallel: {:?}",
        started.elapsed()
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let prepares = Arc::new(Mutex::new(Vec::new()));
    let f = slow_preparer(Duration::ZERO, prepares.clone());
    let runners = ExtRunners::start(&connect_config(&f.path, "conf_expire_time: 1")).unwrap();
    let r = runners.default_runner();
    r.prepare("k", conf());
    assert_eq!(within(2, r.token("k")).await.unwrap(), 1);
    // Refreshed in the background between 0.8 and 0.9 of the lifetime.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        prepares.lock().unwrap().len() >= 2,
        "{:?}",
        prepares.lock().unwrap()
    );
    let t = r.token("k").await.unwrap();
    assert!(t >= 2, "a fresh token, got {t}");
    // A forgotten key is no longer refreshed nor callable.
    r.forget("k");
    let n = prepares.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(prepares.lock().unwrap().len(), n);
    let e = r.request("k", get("/"), &TestInfo::default()).await;
    assert!(
        matches!(e, Err(RunnerError::Unavailable(ref m)) if m.contains("no conf registered")),
        "{e:?}"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn the_pool_is_bounded_and_reuses_connections() {
    let f = fake(|mut c| async move {
        while let Some(msg) = c.read().await {
            let ToRunner::HttpRequest(r) = msg else {
                panic!()
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.write(stop(r.id, "")).await;
        }
    });
    let runners =
        ExtRunners::start(&connect_config(&f.path, "pool_size: 2\nread_timeout: 5")).unwrap();
    let r = runners.default_runner().clone();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.http_request(get("/"), &TestInfo::default()).await })
        })
        .collect();
    for c in calls {
        within(5, c).await.unwrap().unwrap();
    }
    assert_eq!(
        f.max_open.load(Ordering::SeqCst),
        2,
        "at most pool_size connections"
    );
    assert_eq!(
        f.accepted.load(Ordering::SeqCst),
        2,
        "idle connections reused"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn a_runner_that_closed_an_idle_connection_is_not_reused() {
    let served = Arc::new(AtomicUsize::new(0));
    let s2 = served.clone();
    let f = fake(move |mut c| {
        let served = s2.clone();
        async move {
            // Answers one call, then closes the connection.
            if let Some(ToRunner::HttpRequest(r)) = c.read().await {
                served.fetch_add(1, Ordering::SeqCst);
                c.write(stop(r.id, "")).await;
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    for _ in 0..3 {
        r.http_request(get("/"), &TestInfo::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(f.accepted.load(Ordering::SeqCst), 3);
    runners.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_runner_is_unavailable_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let runners = ExtRunners::start(&connect_config(&dir.path().join("none.sock"), "")).unwrap();
    let started = Instant::now();
    let e = runners
        .default_runner()
        .http_request(get("/"), &TestInfo::default())
        .await;
    assert!(matches!(e, Err(RunnerError::Unavailable(_))), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // After shutdown, calls fail instead of waiting.
    runners.shutdown().await;
    let e = runners
        .default_runner()
        .http_request(get("/"), &TestInfo::default())
        .await;
    assert!(matches!(e, Err(RunnerError::Unavailable(_))), "{e:?}");
}

#[tokio::test]
async fn a_polite_runner_serves_keyed_calls() {
    let tokens = Arc::new(AtomicU32::new(0));
    let f = fake(move |c| polite(c, tokens.clone()));
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    r.prepare("a", conf());
    r.prepare("b", vec![TextEntry::new("q", "1")]);
    let ta = within(2, r.token("a")).await.unwrap();
    let tb = within(2, r.token("b")).await.unwrap();
    assert_ne!(ta, tb);
    let reply = r
        .request("b", get("/"), &TestInfo::default())
        .await
        .unwrap();
    let Some(Action::Stop(s)) = reply.action else {
        panic!()
    };
    assert_eq!(s.body, Bytes::from(format!("token {tb}")));
    let mut keys = r.keys();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    runners.shutdown().await;
}

#[tokio::test]
async fn unexpected_frames_and_wrong_ids_poison_the_connection() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let f = fake(move |mut c| {
        let n = n2.clone();
        async move {
            while let Some(msg) = c.read().await {
                let ToRunner::HttpRequest(r) = msg else {
                    panic!()
                };
                match n.fetch_add(1, Ordering::SeqCst) {
                    // A response-call reply to a request call.
                    0 => {
                        c.write(ToGateway::HttpResponseReply(HttpResponseReply {
                            id: r.id,
                            ..Default::default()
                        }))
                        .await
                    }
                    // Another call's id.
                    1 => c.write(stop(r.id + 100, "")).await,
                    // A frame type the protocol does not have.
                    2 => c.write_raw(&[9, 0, 0, 0]).await,
                    _ => c.write(stop(r.id, "fine")).await,
                }
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "")).unwrap();
    let r = runners.default_runner();
    for _ in 0..3 {
        let e = r.http_request(get("/"), &TestInfo::default()).await;
        assert!(matches!(e, Err(RunnerError::Protocol(_))), "{e:?}");
    }
    let ok = r
        .http_request(get("/"), &TestInfo::default())
        .await
        .unwrap();
    assert!(matches!(ok.action, Some(Action::Stop(ref s)) if &s.body[..] == b"fine"));
    assert_eq!(
        f.accepted.load(Ordering::SeqCst),
        4,
        "a new connection after each violation"
    );
    runners.shutdown().await;
}

#[tokio::test]
async fn frames_near_the_16_mib_limit() {
    const BIG: usize = 16 * 1024 * 1024 - 1024;
    let f = fake(|mut c| async move {
        while let Some(msg) = c.read().await {
            let ToRunner::HttpRequest(r) = msg else {
                panic!()
            };
            // Ask for the request body: the answer is too large for one frame.
            c.write(ToGateway::ExtraInfo(ExtraInfo::ReqBody)).await;
            match c.read().await {
                // The gateway gave up on the answer and closed the connection.
                None => return,
                Some(ToRunner::ExtraInfoAnswer(a)) => {
                    let len = a.map_or(0, |b| b.len());
                    c.write(stop(r.id, &"x".repeat(BIG.min(len)))).await;
                }
                Some(other) => panic!("{other:?}"),
            }
        }
    });
    let runners = ExtRunners::start(&connect_config(&f.path, "read_timeout: 5")).unwrap();
    let r = runners.default_runner();
    // A near-limit answer and a near-limit reply go through.
    let info = TestInfo {
        req_body: Bytes::from(vec![b'b'; BIG]),
        ..TestInfo::default()
    };
    let reply = within(8, r.http_request(get("/"), &info)).await.unwrap();
    let Some(Action::Stop(s)) = reply.action else {
        panic!()
    };
    assert_eq!(s.body.len(), BIG);
    // An answer over the limit is an error, not a panic nor a truncated frame.
    let info = TestInfo {
        req_body: Bytes::from(vec![b'b'; runner_protocol::MAX_PAYLOAD + 1]),
        ..TestInfo::default()
    };
    let e = within(8, r.http_request(get("/"), &info)).await;
    assert!(
        matches!(e, Err(RunnerError::Protocol(ref m)) if m.contains("exceeds")),
        "{e:?}"
    );
    runners.shutdown().await;
}
