//! `bare-forward LISTEN_PORT UPSTREAM_PORT WORKERS`: forwards every request on 127.0.0.1 to one
//! upstream through a pooled hyper-util client, on a tokio multi-thread runtime. bench/run runs it
//! beside ferrogate and nginx to show what hyper itself costs on the machine.

use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let [listen, upstream, workers] = args[..] else {
        panic!("usage: bare-forward LISTEN_PORT UPSTREAM_PORT WORKERS");
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(workers))
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(listen, upstream));
}

async fn serve(listen: u16, upstream: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .expect("bind");
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(320)
        .build_http();
    let base = format!("http://127.0.0.1:{upstream}");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let client = client.clone();
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let uri = format!("{base}{path}").parse().expect("uri");
                *req.uri_mut() = uri;
                async move { client.request(req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
