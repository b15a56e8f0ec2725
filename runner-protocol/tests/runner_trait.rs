//! The `Runner` trait can be implemented without sockets and driven with any `InfoSource`: a
//! runner that stops requests with the value of a variable it asks for. The same runner behind
//! `KeyedRunner` (tokens by key in a `ConfCache`) is driven as `Arc<dyn KeyedRunner>`.

use bytes::Bytes;
use runner_protocol::*;

struct EchoVarRunner;

impl Runner for EchoVarRunner {
    async fn prepare_conf(&self, conf: PrepareConf) -> Result<u32, RunnerError> {
        u32::try_from(conf.conf.len()).map_err(|_| RunnerError::Runner(ErrorCode::BadRequest))
    }

    async fn http_request<I: InfoSource + ?Sized>(
        &self,
        call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        if call.conf_token == 0 {
            return Err(RunnerError::Runner(ErrorCode::ConfTokenNotFound));
        }
        let body = info
            .answer(&ExtraInfo::Var(Bytes::from_static(b"uri")))
            .await
            .unwrap_or_default();
        Ok(HttpRequestReply {
            id: call.id,
            action: Some(Action::Stop(Stop {
                status: 200,
                headers: Vec::new(),
                body,
            })),
        })
    }

    async fn http_response<I: InfoSource + ?Sized>(
        &self,
        call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        let body = info.answer(&ExtraInfo::RespBody).await.unwrap_or_default();
        Ok(HttpResponseReply {
            id: call.id,
            status: call.status,
            headers: Vec::new(),
            body,
        })
    }
}

struct Vars;

impl InfoSource for Vars {
    async fn answer(&self, question: &ExtraInfo) -> Option<Bytes> {
        match question {
            ExtraInfo::Var(name) if &name[..] == b"uri" => Some(Bytes::from_static(b"/hello")),
            ExtraInfo::RespBody => Some(Bytes::from_static(b"upstream body")),
            _ => None,
        }
    }
}

fn request(conf_token: u32) -> HttpRequest {
    HttpRequest {
        id: 9,
        src_ip: Bytes::from_static(&[127, 0, 0, 1]),
        method: Method::Get,
        path: Bytes::from_static(b"/hello"),
        args: Vec::new(),
        headers: Vec::new(),
        conf_token,
    }
}

#[tokio::test]
async fn a_runner_is_driven_through_the_trait() {
    let runner = EchoVarRunner;
    let token = runner
        .prepare_conf(PrepareConf {
            conf: vec![TextEntry::new("echo", "{}")],
            key: Bytes::from_static(b"k"),
        })
        .await
        .expect("prepared");
    let reply = runner
        .http_request(request(token), &Vars)
        .await
        .expect("answered");
    assert_eq!(reply.id, 9);
    assert_eq!(
        reply.action,
        Some(Action::Stop(Stop {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from_static(b"/hello")
        }))
    );
    assert!(matches!(
        runner.http_request(request(0), &Vars).await,
        Err(RunnerError::Runner(ErrorCode::ConfTokenNotFound))
    ));
    let resp = runner
        .http_response(
            HttpResponse {
                id: 3,
                status: 502,
                headers: Vec::new(),
                conf_token: token,
            },
            &Vars,
        )
        .await
        .expect("answered");
    assert_eq!(
        (resp.id, resp.status, &resp.body[..]),
        (3, 502, &b"upstream body"[..])
    );
}

/// A keyed runner over [`ConfCache`]: the token is the conf's length, prepared by key.
#[derive(Debug, Default)]
struct KeyedEcho {
    tokens: ConfCache<u32>,
}

impl Prepare for KeyedEcho {
    type Token = u32;

    async fn prepare(
        &self,
        _key: &std::sync::Arc<str>,
        conf: &std::sync::Arc<Vec<TextEntry>>,
    ) -> Result<u32, RunnerError> {
        u32::try_from(conf.len()).map_err(|_| RunnerError::Runner(ErrorCode::BadRequest))
    }
}

impl KeyedRunner for KeyedEcho {
    fn name(&self) -> &str {
        "echo"
    }

    fn prepare(&self, key: &str, conf: Vec<TextEntry>) {
        self.tokens.insert(key, conf);
    }

    fn forget(&self, key: &str) {
        self.tokens.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.tokens.keys()
    }

    fn request<'a>(
        &'a self,
        key: &'a str,
        call: HttpRequest,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpRequestReply> {
        Box::pin(async move {
            let token = self.tokens.current(key)?.fill(self).await?;
            EchoVarRunner
                .http_request(
                    HttpRequest {
                        conf_token: token,
                        ..call
                    },
                    info,
                )
                .await
        })
    }

    fn response<'a>(
        &'a self,
        key: &'a str,
        call: HttpResponse,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpResponseReply> {
        Box::pin(async move {
            let token = self.tokens.current(key)?.fill(self).await?;
            EchoVarRunner
                .http_response(
                    HttpResponse {
                        conf_token: token,
                        ..call
                    },
                    info,
                )
                .await
        })
    }
}

#[tokio::test]
async fn a_keyed_runner_is_driven_behind_dyn() {
    let runner: std::sync::Arc<dyn KeyedRunner> = std::sync::Arc::new(KeyedEcho::default());
    runner.prepare("route#1", vec![TextEntry::new("echo", "{}")]);
    assert_eq!(runner.keys(), ["route#1"]);
    let reply = runner
        .request("route#1", request(0), &Vars)
        .await
        .expect("answered");
    assert!(matches!(reply.action, Some(Action::Stop(s)) if &s.body[..] == b"/hello"));
    runner.forget("route#1");
    assert!(matches!(
        runner.request("route#1", request(0), &Vars).await,
        Err(RunnerError::Unavailable(_))
    ));
}
