//! A real server on a free port and a real HTTP client (hyper's) to ask
//! it.

#![allow(dead_code)]

use std::time::Duration;

use events_http::axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const TOKEN: &str = "t0ken: with spaces & symbols";

/// Serves `app` on 127.0.0.1 at a free port; gives the base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { events_http::axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    /// The `error` of a JSON error body, checking that it is the only field.
    pub fn error(&self) -> String {
        let json = self.json();
        let object = json
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {}", self.body));
        assert_eq!(
            object.len(),
            1,
            "an error body has `error` only: {}",
            self.body
        );
        object["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text: {}", self.body))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one server, with or without the token.
#[derive(Clone)]
pub struct Client {
    http: Hyper<HttpConnector, Full<Bytes>>,
    pub base: String,
    pub token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        Client {
            http: Hyper::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// `method path` with `headers` and a body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.http.request(request))
            .await
            .expect("an answer within 30 s")
            .expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], None).await
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        answer.json()
    }

    /// `method path` with a JSON body.
    pub async fn json(&self, method: &str, path: &str, body: &Value) -> Answer {
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        )
        .await
    }
}
