//! The Admin API answers as APISIX's t/admin/*.t tests expect, byte for byte: each case below
//! mirrors one test block (file and TEST number in its comment), sent to a real gateway on the
//! embedded store over real HTTP.

mod common;

use common::admin::*;
use http::Method;

/// One request and APISIX's exact answer.
struct Case {
    /// The t/admin file and TEST it mirrors.
    from: &'static str,
    method: Method,
    path: &'static str,
    body: &'static str,
    status: u16,
    answer: &'static str,
}

const fn case(
    from: &'static str,
    method: Method,
    path: &'static str,
    body: &'static str,
    status: u16,
    answer: &'static str,
) -> Case {
    Case {
        from,
        method,
        path,
        body,
        status,
        answer,
    }
}

const UP: &str = r#""upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#;

async fn run(admin: &Admin, cases: &[Case]) {
    for c in cases {
        let got = admin.call(c.method.clone(), c.path, c.body).await;
        assert_eq!(
            (
                got.status.as_u16(),
                String::from_utf8_lossy(&got.body).as_ref()
            ),
            (c.status, c.answer),
            "{}",
            c.from
        );
    }
}

#[tokio::test]
async fn routes_services_upstreams_answer_as_apisix() {
    let (_gw, admin) = embedded_gateway().await;
    let up = format!(r#"{{"uri": "/index.html", {UP}}}"#);
    // A valid route first, so that later failures are not for want of one.
    assert_eq!(admin.call(Method::PUT, "/routes/1", &up).await.status, 201);
    let cases = [
        // routes.t TEST 9
        case(
            "routes.t 9",
            Method::PUT,
            "/routes/1",
            r#"{"methods": ["invalid_method"], "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"methods\" validation failed: failed to validate item 1: matches none of the enum values"}"#,
        ),
        // routes.t TEST 10
        case(
            "routes.t 10",
            Method::PUT,
            "/routes/1",
            r#"{"service_id": "invalid_id$", "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"service_id\" validation failed: object matches none of the required"}"#,
        ),
        // routes.t TEST 12
        case(
            "routes.t 12",
            Method::PUT,
            "/routes/1",
            r#"{"id": 3, "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"wrong route id"}"#,
        ),
        // routes.t TEST 14
        case(
            "routes.t 14",
            Method::PUT,
            "/routes",
            r#"{"id": -100, "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"id\" validation failed: object matches none of the required"}"#,
        ),
        // routes.t TEST 15
        case(
            "routes.t 15",
            Method::PUT,
            "/routes/1",
            r#"{"upstream_id": "invalid$", "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"upstream_id\" validation failed: object matches none of the required"}"#,
        ),
        // routes.t TEST 17
        case(
            "routes.t 17",
            Method::POST,
            "/routes",
            r#"{"id": 1, "plugins": {}, "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"wrong route id, do not need it"}"#,
        ),
        // routes.t TEST 18
        case(
            "routes.t 18",
            Method::POST,
            "/routes/1",
            r#"{"plugins": {}, "uri": "/index.html"}"#,
            400,
            r#"{"error_msg":"wrong route id, do not need it"}"#,
        ),
        // routes2.t TEST 14
        case(
            "routes2.t 14",
            Method::PUT,
            "/routes/1",
            r#"{"uri": "/index.html", "remote_addr": "127.0.0.1", "remote_addrs": ["127.0.0.1"], "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}}"#,
            400,
            r#"{"error_msg":"only one of remote_addr or remote_addrs is allowed"}"#,
        ),
        // routes3.t TEST 4
        case(
            "routes3.t 4",
            Method::PUT,
            "/routes/1",
            r#"{"remote_addr": "127.0.0.33333", "uri": "/index.html", "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"remote_addr\" validation failed: object matches none of the required"}"#,
        ),
        // routes3.t TEST 14
        case(
            "routes3.t 14",
            Method::PUT,
            "/routes/1",
            r#"{"uri": "/index.html", "host": "xxx.com", "hosts": ["foo.com"], "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}}"#,
            400,
            r#"{"error_msg":"only one of host or hosts is allowed"}"#,
        ),
        // routes4.t TEST 3
        case(
            "routes4.t 3",
            Method::PUT,
            "/routes?ttl=xxx",
            r#"{"uri": "/index.html", "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}}"#,
            400,
            r#"{"error_msg":"invalid argument ttl: should be a number"}"#,
        ),
        // routes4.t TEST 6
        case(
            "routes4.t 6",
            Method::PUT,
            "/routes/1",
            r#"{"methods": ["GET"], "uri": "/index.html", "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "chash"}}"#,
            400,
            r#"{"error_msg":"missing key"}"#,
        ),
        // routes4.t TEST 7
        case(
            "routes4.t 7",
            Method::PUT,
            "/routes/1",
            r#"{"uri": "/index.html", "upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "chash", "hash_on": "header"}}"#,
            400,
            r#"{"error_msg":"missing key"}"#,
        ),
        // routes4.t TEST 21
        case(
            "routes4.t 21",
            Method::PUT,
            "/routes/1",
            r#"{"methods": ["GET"], "uri": "/index.html", "labels": {"env": ["production", "release"]}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"labels\" validation failed: failed to validate env (matching \".*\"): wrong type: expected string, got table"}"#,
        ),
        // schema-validate.t: the route schema's own words for uris and uri.
        case(
            "schema-validate.t (uris empty)",
            Method::POST,
            "/schema/validate/routes",
            r#"{"uris": [], "upstream_id": "1"}"#,
            400,
            r#"{"error_msg":"property \"uris\" validation failed: expect array to have at least 1 items"}"#,
        ),
        case(
            "schema-validate.t (uris twice)",
            Method::POST,
            "/schema/validate/routes",
            r#"{"uris": ["/a", "/a"], "upstream_id": "1"}"#,
            400,
            r#"{"error_msg":"property \"uris\" validation failed: expected unique items but items 1 and 2 are equal"}"#,
        ),
        case(
            "schema-validate.t (uri empty)",
            Method::POST,
            "/schema/validate/routes",
            r#"{"uri": "", "upstream_id": "1"}"#,
            400,
            r#"{"error_msg":"property \"uri\" validation failed: string too short, expected at least 1, got 0"}"#,
        ),
        case(
            "schema-validate.t (status)",
            Method::POST,
            "/schema/validate/routes",
            r#"{"uri": "/a", "upstream_id": "1", "status": 3}"#,
            400,
            r#"{"error_msg":"property \"status\" validation failed: matches none of the enum values"}"#,
        ),
        case(
            "schema-validate.t (no uri)",
            Method::POST,
            "/schema/validate/routes",
            r#"{"upstream_id": "1"}"#,
            400,
            r#"{"error_msg":"allOf 1 failed: value should match only one schema, but matches none"}"#,
        ),
        // services.t TEST 9
        case(
            "services.t 9",
            Method::PUT,
            "/services/1",
            r#"{"id": 3, "plugins": {}}"#,
            400,
            r#"{"error_msg":"wrong service id"}"#,
        ),
        // services.t TEST 11
        case(
            "services.t 11",
            Method::PUT,
            "/services",
            r#"{"id": -100, "plugins": {}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"id\" validation failed: object matches none of the required"}"#,
        ),
        // services.t TEST 12
        case(
            "services.t 12",
            Method::PUT,
            "/services",
            r#"{"id": "invalid_id$", "plugins": {}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"id\" validation failed: object matches none of the required"}"#,
        ),
        // services.t TEST 13
        case(
            "services.t 13",
            Method::PUT,
            "/services",
            r#"{"id": 1, "upstream_id": "invalid$"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"upstream_id\" validation failed: object matches none of the required"}"#,
        ),
        // services.t TEST 15
        case(
            "services.t 15",
            Method::POST,
            "/services/1",
            r#"{"plugins": {}}"#,
            400,
            r#"{"error_msg":"wrong service id, do not need it"}"#,
        ),
        // services.t TEST 16
        case(
            "services.t 16",
            Method::POST,
            "/services",
            r#"{"id": 1, "plugins": {}}"#,
            400,
            r#"{"error_msg":"wrong service id, do not need it"}"#,
        ),
        // services.t TEST 23
        case(
            "services.t 23",
            Method::PUT,
            "/services/1",
            r#"{"upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "chash"}, "desc": "new service"}"#,
            400,
            r#"{"error_msg":"missing key"}"#,
        ),
        // services.t TEST 25
        case(
            "services.t 25",
            Method::PUT,
            "/services/1",
            r#"{"upstream": {"nodes": {"127.0.0.1:8080": 1}, "type": "chash", "hash_on": "cookie"}}"#,
            400,
            r#"{"error_msg":"missing key"}"#,
        ),
        // upstream.t TEST 7
        case(
            "upstream.t 7",
            Method::PUT,
            "/upstreams/1",
            r#"{"id": 3, "nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"wrong upstream id"}"#,
        ),
        // upstream.t TEST 9
        case(
            "upstream.t 9",
            Method::PUT,
            "/upstreams",
            r#"{"id": -100, "nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"id\" validation failed: object matches none of the required"}"#,
        ),
        // upstream.t TEST 14
        case(
            "upstream.t 14",
            Method::PUT,
            "/upstreams",
            r#"{"id": 1, "nodes": {"127.0.0.1:8080": "1"}, "type": "chash"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"nodes\" validation failed: object matches none of the required"}"#,
        ),
        // upstream.t TEST 15
        case(
            "upstream.t 15",
            Method::PUT,
            "/upstreams",
            r#"{"id": 1, "nodes": {"127.0.0.1:8080": -100}, "type": "chash"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"nodes\" validation failed: object matches none of the required"}"#,
        ),
        // upstream.t TEST 16
        case(
            "upstream.t 16",
            Method::PUT,
            "/upstreams/1",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "chash"}"#,
            400,
            r#"{"error_msg":"missing key"}"#,
        ),
        // upstream.t TEST 17
        case(
            "upstream.t 17",
            Method::POST,
            "/upstreams/1",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"wrong upstream id, do not need it"}"#,
        ),
        // upstream.t TEST 18
        case(
            "upstream.t 18",
            Method::POST,
            "/upstreams",
            r#"{"id": 1, "nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"wrong upstream id, do not need it"}"#,
        ),
        // upstream.t TEST 23
        case(
            "upstream.t 23",
            Method::POST,
            "/upstreams",
            r#"{"nodes": [{"host": "::1", "port": 8080, "weight": 1}], "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"invalid configuration: IPv6 address must be enclosed with '[' and ']'"}"#,
        ),
        // upstream3.t TEST 2
        case(
            "upstream3.t 2",
            Method::PUT,
            "/upstreams/a-b-c-ABC_0123",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "retry_timeout": -1, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"retry_timeout\" validation failed: expected -1 to be at least 0"}"#,
        ),
        // upstream3.t TEST 13
        case(
            "upstream3.t 13",
            Method::PUT,
            "/upstreams/1",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "chash", "key": "not_support"}"#,
            400,
            r#"{"error_msg":"invalid configuration: failed to match pattern \"^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$\" with \"not_support\""}"#,
        ),
        // upstream3.t TEST 20
        case(
            "upstream3.t 20",
            Method::PUT,
            "/upstreams/1",
            r#"{"key": "$#^@", "nodes": {"127.0.0.1:8080": 1}, "type": "chash", "hash_on": "header"}"#,
            400,
            r#"{"error_msg":"invalid configuration: failed to match pattern \"^[a-zA-Z0-9-_]+$\" with \"$#^@\""}"#,
        ),
        // upstream3.t TEST 22
        case(
            "upstream3.t 22",
            Method::PUT,
            "/upstreams/1",
            r#"{"key": "$#^@abc", "nodes": {"127.0.0.1:8080": 1}, "type": "chash", "hash_on": "cookie"}"#,
            400,
            r#"{"error_msg":"invalid configuration: failed to match pattern \"^[a-zA-Z0-9-_]+$\" with \"$#^@abc\""}"#,
        ),
        // upstream3.t TEST 25
        case(
            "upstream3.t 25",
            Method::PUT,
            "/upstreams/1",
            r#"{"key": "dsadas", "nodes": {"127.0.0.1:8080": 1}, "type": "chash", "hash_on": "aabbcc"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"hash_on\" validation failed: matches none of the enum values"}"#,
        ),
        // upstream4.t TEST 4
        case(
            "upstream4.t 4",
            Method::PUT,
            "/upstreams/*invalid",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"id\" validation failed: object matches none of the required"}"#,
        ),
        // upstream4.t TEST 6
        case(
            "upstream4.t 6",
            Method::PUT,
            "/upstreams/a-b-c-ABC_0123",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "retries": -1, "type": "roundrobin"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"retries\" validation failed: expected -1 to be at least 0"}"#,
        ),
        // upstream4.t TEST 11
        case(
            "upstream4.t 11",
            Method::PUT,
            "/upstreams/1",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin", "labels": {"env": ["production", "release"]}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"labels\" validation failed: failed to validate env (matching \".*\"): wrong type: expected string, got table"}"#,
        ),
        // plugins.t TEST 2
        case(
            "plugins.t 2",
            Method::GET,
            "/plugins/asdf",
            "",
            404,
            r#"{"error_msg":"plugin not found in subsystem http"}"#,
        ),
        // plugins.t TEST 13
        case(
            "plugins.t 13",
            Method::GET,
            "/plugins?subsystem=asdf",
            "",
            400,
            r#"{"error_msg":"unsupported subsystem: asdf"}"#,
        ),
        // plugins.t TEST 14
        case(
            "plugins.t 14",
            Method::GET,
            "/plugins/http-logger?subsystem=stream",
            "",
            404,
            r#"{"error_msg":"plugin not found in subsystem stream"}"#,
        ),
    ];
    run(&admin, &cases).await;
    // Nothing refused was written: route 1 is still the first one.
    assert_eq!(
        admin.get("/routes/1").await.json()["value"]["uri"],
        "/index.html"
    );
}

/// Integer ids are stored as sent (routes.t TEST 13 and upstream.t TEST 8 read back `"id": 1`
/// as the number), a path id as text; PURGE is a method a route may list.
#[tokio::test]
async fn ids_and_methods_are_kept_as_apisix_keeps_them() {
    let (gw, admin) = embedded_gateway().await;
    let created = admin
        .call(
            Method::PUT,
            "/upstreams",
            r#"{"id": 1, "nodes": {"127.0.0.1:8080": 1}, "type": "roundrobin"}"#,
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["value"]["id"], 1);
    let by_path = admin
        .call(
            Method::PUT,
            "/upstreams/2",
            r#"{"nodes": {"127.0.0.1:8080": 1}, "type": "least_conn"}"#,
        )
        .await;
    assert_eq!(by_path.json()["value"]["id"], "2");
    let route = admin
        .call(
            Method::PUT,
            "/routes/p",
            r#"{"uri": "/purge", "methods": ["PURGE"], "upstream_id": 1}"#,
        )
        .await;
    assert_eq!(route.status, 201, "{:?}", route.body);
    // The route answers PURGE (the upstream is down: 502 from the gateway, not a 404).
    let mut purged = 0;
    for _ in 0..200 {
        let got = common::request(
            Method::from_bytes(b"PURGE").expect("method"),
            &gw.url("/purge"),
            &[],
        )
        .await;
        purged = got.status.as_u16();
        if purged != 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_ne!(purged, 404, "PURGE is routed");
    let get = common::get(&gw.url("/purge")).await;
    assert_eq!(
        get.status.as_u16(),
        404,
        "GET is not in the route's methods"
    );
}

#[tokio::test]
async fn consumers_and_credentials_answer_as_apisix() {
    let (_gw, admin) = embedded_gateway().await;
    let setup = [
        (
            r#"/consumers"#,
            r#"{"username": "case_a", "plugins": {"key-auth": {"key": "duplicate-check-key-1"}}}"#,
        ),
        ("/consumers", r#"{"username": "alex"}"#),
        (
            "/consumers",
            r#"{"username": "bob", "plugins": {"key-auth": {"key": "the-key-of-bob"}}}"#,
        ),
        (
            "/consumers/alex/credentials/cred-alex-a",
            r#"{"plugins": {"key-auth": {"key": "the-key-of-alex"}}}"#,
        ),
    ];
    for (path, body) in setup {
        let got = admin.call(Method::PUT, path, body).await;
        assert!(got.status.is_success(), "{path}: {:?}", got.body);
    }
    let cases = [
        // consumers.t TEST 6
        case(
            "consumers.t 6",
            Method::PUT,
            "/consumers",
            r#"{"id": "jack"}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"username\" is required"}"#,
        ),
        // consumers.t TEST 9
        case(
            "consumers.t 9",
            Method::PUT,
            "/consumers",
            r#"{"username": "jack", "labels": {"env": ["production", "release"]}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"labels\" validation failed: failed to validate env (matching \".*\"): wrong type: expected string, got table"}"#,
        ),
        // consumers.t TEST 10
        case(
            "consumers.t 10",
            Method::POST,
            "/consumers",
            r#"{"username": "jack"}"#,
            405,
            r#"{"error_msg":"not supported `POST` method for consumer"}"#,
        ),
        // consumers.t TEST 13
        case(
            "consumers.t 13",
            Method::PUT,
            "/consumers",
            r#"{"username": "case_b", "plugins": {"key-auth": {"key": "duplicate-check-key-1"}}}"#,
            400,
            r#"{"error_msg":"duplicate key of plugin key-auth found with consumer: case_a"}"#,
        ),
        // consumers2.t TEST 5
        case(
            "consumers2.t 5",
            Method::PUT,
            "/consumers/jack1",
            r#"{"username": "jack"}"#,
            400,
            r#"{"error_msg":"wrong username"}"#,
        ),
        // credentials.t TEST 1
        case(
            "credentials.t 1",
            Method::PUT,
            "/consumers/jack/credentials/credential_a",
            r#"{"plugins": {"key-auth": {"key": "the-key"}}}"#,
            404,
            r#"{"error_msg":"consumer not found"}"#,
        ),
        // credentials.t TEST 5
        case(
            "credentials.t 5",
            Method::PUT,
            "/consumers/alex/credentials/credential_b",
            r#"{"plugins": {"limit-conn": {"conn": 1, "burst": 0, "default_conn_delay": 0.1, "rejected_code": 503, "key_type": "var", "key": "http_a"}}}"#,
            400,
            r#"{"error_msg":"only supports auth type plugins in consumer credential"}"#,
        ),
        // credentials.t TEST 11
        case(
            "credentials.t 11",
            Method::PUT,
            "/consumers/alex/credentials/xxx-yyy-zzz",
            r#"{"plugins": {"key-auth": {"key": "the-key"}, "basic-auth": {"username": "the-user", "password": "the-password"}}}"#,
            400,
            r#"{"error_msg":"invalid configuration: property \"plugins\" validation failed: expect object to have at most 1 properties"}"#,
        ),
        // credentials.t TEST 16
        case(
            "credentials.t 16",
            Method::PUT,
            "/consumers/alex/credentials",
            r#"{"plugins": {"key-auth": {"key": "the-key"}}}"#,
            400,
            r#"{"error_msg":"missing credential id"}"#,
        ),
        // credentials.t TEST 19
        case(
            "credentials.t 19",
            Method::PUT,
            "/consumers/bob/credentials/cred-bob-a",
            r#"{"plugins": {"key-auth": {"key": "the-key-of-alex"}}}"#,
            400,
            r#"{"error_msg":"duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex"}"#,
        ),
        // credentials.t TEST 20
        case(
            "credentials.t 20",
            Method::PUT,
            "/consumers/alex/credentials/cred-alex-b",
            r#"{"plugins": {"key-auth": {"key": "the-key-of-bob"}}}"#,
            400,
            r#"{"error_msg":"duplicate key of plugin key-auth found with consumer: bob"}"#,
        ),
        // credentials.t TEST 21
        case(
            "credentials.t 21",
            Method::PUT,
            "/consumers",
            r#"{"username": "carol", "plugins": {"key-auth": {"key": "the-key-of-alex"}}}"#,
            400,
            r#"{"error_msg":"duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex"}"#,
        ),
        // credentials.t TEST 24
        case(
            "credentials.t 24",
            Method::PUT,
            "/consumers/bob/credentials/cred-bob-b",
            r#"{"plugins": {"key-auth": {"key": "the-key-of-bob"}}}"#,
            400,
            r#"{"error_msg":"duplicate key of plugin key-auth found with consumer: bob"}"#,
        ),
    ];
    run(&admin, &cases).await;
    // A consumer may carry the key of its own credential (APISIX's `is_self`).
    let own = admin
        .call(
            Method::PUT,
            "/consumers",
            r#"{"username": "alex", "plugins": {"key-auth": {"key": "the-key-of-alex"}}}"#,
        )
        .await;
    assert_eq!(own.status, 200, "{:?}", own.body);
}
