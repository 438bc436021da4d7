//! The OpenAPI 3 description of the routes, written by hand (a derive
//! crate would bring a proc-macro tree for one document) and kept honest
//! by tests: every route the router serves is described with its methods
//! and nothing else is (`tests::every_route_is_described`), and the
//! integration tests ask the running server every path and method the
//! document names.

use axum::extract::OriginalUri;
use serde_json::{Map, Value, json};

use crate::log::{DEFAULT_LIMIT, MAX_LIMIT};

/// The document's own path.
const PATH: &str = "/events/openapi.json";

/// `GET /events/openapi.json`, naming the prefix the router is nested
/// under, if any, as its server.
pub(crate) async fn serve(OriginalUri(original): OriginalUri) -> axum::Json<Value> {
    let prefix = original.path().strip_suffix(PATH).unwrap_or("");
    let mut doc = document();
    doc["servers"] = json!([{ "url": if prefix.is_empty() { "/" } else { prefix } }]);
    axum::Json(doc)
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn required_query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": true, "description": description, "schema": schema })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn time() -> Value {
    json!({
        "type": "string",
        "description": "RFC 3339 (`2026-12-06T22:30:40Z`, `2026-12-06T23:30:40+01:00`) or milliseconds since the epoch",
        "pattern": "^([0-9]{1,15}|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$",
    })
}

fn non_empty() -> Value {
    json!({ "type": "string", "minLength": 1, "pattern": "\\S" })
}

fn event_id() -> Value {
    json!({ "type": "string", "description": "an event id (a ULID)", "pattern": "^[0-7][0-9A-HJKMNP-TV-Z]{25}$" })
}

fn position() -> Value {
    json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX })
}

fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT })
}

fn order() -> Value {
    json!({ "type": "string", "enum": ["asc", "desc"], "default": "asc" })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } })
}

/// The answers of an operation: `ok` with its schema, and the errors.
fn answers(ok: (&str, &str, &str), errors: &[(&str, &str)]) -> Value {
    let mut map = Map::new();
    map.insert(
        ok.0.to_owned(),
        json!({ "description": ok.1, "content": { "application/json": { "schema": schema_ref(ok.2) } } }),
    );
    let mut errors = errors.to_vec();
    errors.push((
        "401",
        "no token or a wrong one, or the authenticator said no",
    ));
    errors.push((
        "503",
        "the event store failed (the message gives its causes)",
    ));
    for (status, description) in errors {
        map.insert(
            status.to_owned(),
            json!({ "description": description, "content": { "application/json": { "schema": schema_ref("Error") } } }),
        );
    }
    Value::Object(map)
}

const BAD: (&str, &str) = (
    "400",
    "bad input: an unknown parameter, a bad time, range, cursor or limit",
);
const UNPROCESSABLE: (&str, &str) = (
    "422",
    "a JSON body of the wrong shape (an unknown field, a missing one, a wrong type)",
);
const BAD_BODY: (&str, &str) = (
    "400",
    "bad input: a body that is not JSON, a malformed URL, `http` where `https` is required, no event names",
);
const FORBIDDEN: (&str, &str) = (
    "403",
    "the URL leads to a loopback, private, link-local or metadata address",
);
const NOT_JSON: (&str, &str) = ("415", "the body is not sent as `application/json`");
const NO_WEBHOOKS: (&str, &str) = ("501", "the API was built without webhooks");

/// The document, its `servers` aside.
pub(crate) fn document() -> Value {
    let names = query(
        "event_name",
        "event names or wildcard patterns (`appointment.*`), separated by commas; `name` is taken too",
        string(),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "events: the event log's HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "History, entity timelines, statistics and schemas of the event log, and its webhook subscriptions with their delivery log. Every error is `{\"error\": \"<in words>\"}`."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/events": { "get": {
                "operationId": "listEvents",
                "summary": "The event log's history, one page, paged by position",
                "parameters": [
                    names,
                    query("entity_type", "only events about entities of this type", string()),
                    query("entity_id", "only events about this entity; it needs `entity_type` beside it (a 400 without)", string()),
                    query("actor", "only events whose metadata `actor_id` is this", string()),
                    query("from", "occurred at or after", time()),
                    query("to", "occurred before", time()),
                    query("after", "positions above this (the `next` of the page before, oldest first)", position()),
                    query("before", "positions below this (the `next` of the page before, newest first)", position()),
                    query("limit", "at most this many", limit()),
                    query("order", "`asc`: oldest first; `desc`: newest first", order()),
                ],
                "responses": answers(("200", "one page of events", "EventPage"), &[BAD]),
            }},
            "/events/timeline": { "get": {
                "operationId": "entityTimeline",
                "summary": "The events about one entity, in its stream's order",
                "parameters": [
                    required_query("entity_type", "the entity's type (`appointment`)", non_empty()),
                    required_query("entity_id", "its id (`123`)", non_empty()),
                    query("related", "also events naming it among their related entities", json!({ "type": "boolean", "default": false })),
                    query("after", "positions above (oldest first) or below (newest first) this", position()),
                    query("limit", "at most this many", limit()),
                    query("order", "`asc` or `desc`", order()),
                ],
                "responses": answers(("200", "the entity's events", "Timeline"), &[BAD]),
            }},
            "/events/stats": { "get": {
                "operationId": "eventStats",
                "summary": "How many events of each name occurred per bucket",
                "parameters": [
                    query("bucket", "the bucket width", json!({ "type": "string", "enum": ["minute", "hour", "day"], "default": "hour" })),
                    query("event_name", "names or patterns, separated by commas", string()),
                    query("from", "occurred at or after", time()),
                    query("to", "occurred before", time()),
                ],
                "responses": answers(("200", "counts per bucket and name", "Stats"), &[BAD]),
            }},
            "/events/schemas": { "get": {
                "operationId": "eventSchemas",
                "summary": "Each event name and version stored, with the field names seen and its JSON Schema where known",
                "responses": answers(("200", "the schemas", "Schemas"), &[BAD]),
            }},
            "/events/subscriptions": {
                "get": {
                    "operationId": "listSubscriptions",
                    "summary": "Every webhook subscription, oldest first (secrets are not shown)",
                    "responses": answers(("200", "the subscriptions", "Subscriptions"), &[BAD, NO_WEBHOOKS]),
                },
                "post": {
                    "operationId": "createSubscription",
                    "summary": "Subscribe a URL to event names or patterns; the answer holds its id and its secret, shown this once",
                    "requestBody": body("NewSubscription"),
                    "responses": answers(("201", "the subscription, with its secret", "CreatedSubscription"), &[BAD_BODY, FORBIDDEN, NOT_JSON, UNPROCESSABLE, NO_WEBHOOKS]),
                },
            },
            "/events/subscriptions/{id}": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": string() }],
                "put": {
                    "operationId": "updateSubscription",
                    "summary": "Change a subscription: each field given (and not null) replaces the stored one; `active: true` resets its failure count",
                    "requestBody": body("SubscriptionChange"),
                    "responses": answers(("200", "the subscription as it is now", "Subscription"), &[BAD_BODY, FORBIDDEN, ("404", "no subscription has this id"), NOT_JSON, UNPROCESSABLE, NO_WEBHOOKS]),
                },
                "delete": {
                    "operationId": "deleteSubscription",
                    "summary": "Delete a subscription (its delivery log stays)",
                    "responses": answers(("200", "it was deleted", "Deleted"), &[("404", "no subscription has this id"), NO_WEBHOOKS]),
                },
            },
            "/events/webhook-logs": { "get": {
                "operationId": "webhookLogs",
                "summary": "The delivery log, newest first",
                "parameters": [
                    query("subscription_id", "of this subscription", string()),
                    query("event_id", "of this event", event_id()),
                    query("failed", "`true`: only failed attempts; `false`: only successful ones", json!({ "type": "boolean" })),
                    query("since", "sent at or after", time()),
                    query("limit", "at most this many", limit()),
                ],
                "responses": answers(("200", "delivery attempts", "Deliveries"), &[BAD, NO_WEBHOOKS]),
            }},
            "/events/test-webhook": { "post": {
                "operationId": "testWebhook",
                "summary": "Send a signed sample event to a URL and show what came back",
                "requestBody": body("TestWebhook"),
                "responses": answers(("200", "what the endpoint answered (a failed delivery is an answer too)", "TestDelivery"), &[BAD_BODY, FORBIDDEN, NOT_JSON, UNPROCESSABLE, NO_WEBHOOKS, ("502", "the endpoint could not be asked")]),
            }},
            "/events/openapi.json": { "get": {
                "operationId": "openapi",
                "summary": "This description",
                "responses": {
                    "200": { "description": "an OpenAPI 3 document", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "401": { "description": "no token or a wrong one", "content": { "application/json": { "schema": schema_ref("Error") } } },
                },
            }},
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "`EVENTS_HTTP_TOKEN`, or what the application's authenticator takes" }
            },
            "schemas": schemas(),
        },
    })
}

/// `schema` or null. A `$ref` takes no siblings in OpenAPI 3.0, so a
/// reference is wrapped in `allOf`.
fn nullable(mut schema: Value) -> Value {
    if schema.get("$ref").is_some() {
        schema = json!({ "allOf": [schema] });
    }
    schema["nullable"] = Value::Bool(true);
    schema
}

/// An object schema; OpenAPI 3.0 wants `required` absent rather than
/// empty.
fn object(required: &[&str], properties: Value) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn closed(required: &[&str], properties: Value) -> Value {
    let mut schema = object(required, properties);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

fn schemas() -> Value {
    let rfc3339 = json!({ "type": "string", "format": "date-time" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let names = json!({ "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1, "pattern": "\\S" } });
    let entity = schema_ref("Entity");
    let subscription_properties = json!({
        "id": string(),
        "webhook_url": { "type": "string", "format": "uri" },
        "event_names": strings,
        "filters": { "type": "object", "additionalProperties": true, "description": "payload fields (dotted paths) that must equal these values" },
        "active": { "type": "boolean" },
        "description": nullable(string()),
        "created_at": rfc3339,
        "consecutive_failures": { "type": "integer", "minimum": 0 },
        "disabled_reason": nullable(string()),
    });
    let subscription_required = [
        "id",
        "webhook_url",
        "event_names",
        "filters",
        "active",
        "created_at",
        "consecutive_failures",
    ];
    let mut created = subscription_properties.clone();
    created["secret"] = json!({ "type": "string", "description": "`whsec_` and base64: the signing key of Standard Webhooks, shown only here" });
    let mut created_required = subscription_required.to_vec();
    created_required.push("secret");
    json!({
        "Error": closed(&["error"], json!({ "error": { "type": "string", "description": "what went wrong, in words" } })),
        "Entity": closed(&["type", "id"], json!({ "type": string(), "id": string() })),
        "Event": object(
            &["position", "id", "name", "version", "payload", "occurred_at", "metadata", "entity", "entity_version", "related"],
            json!({
                "position": position(),
                "id": { "type": "string", "description": "the event id (a ULID)" },
                "name": string(),
                "version": { "type": "integer", "minimum": 1 },
                "payload": { "description": "the event as JSON" },
                "occurred_at": rfc3339,
                "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
                "entity": nullable(entity.clone()),
                "entity_version": nullable(json!({ "type": "integer", "minimum": 1 })),
                "related": { "type": "array", "items": entity },
            }),
        ),
        "EventPage": object(&["events", "order", "next"], json!({
            "events": { "type": "array", "items": schema_ref("Event") },
            "order": order(),
            "next": nullable(json!({ "type": "integer", "minimum": 0, "description": "the next page's cursor: pass it as `after` (asc) or `before` (desc); null on the last page" })),
        })),
        "Timeline": object(&["entity", "related", "version", "events", "order", "next"], json!({
            "entity": schema_ref("Entity"),
            "related": { "type": "boolean" },
            "version": { "type": "integer", "minimum": 0, "description": "how many events the entity's stream holds" },
            "events": { "type": "array", "items": schema_ref("Event") },
            "order": order(),
            "next": nullable(json!({ "type": "integer", "minimum": 0, "description": "pass it as `after` for the next page" })),
        })),
        "Stats": object(&["bucket", "from", "to", "buckets", "totals"], json!({
            "bucket": { "type": "string", "enum": ["minute", "hour", "day"] },
            "from": nullable(rfc3339.clone()),
            "to": nullable(rfc3339.clone()),
            "buckets": { "type": "array", "items": object(&["start", "name", "count"], json!({
                "start": rfc3339, "name": string(), "count": { "type": "integer", "minimum": 0 },
            })) },
            "totals": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 0 } },
        })),
        "Schemas": object(&["schemas"], json!({
            "schemas": { "type": "array", "items": object(&["name", "version", "count", "last_seen", "fields", "schema"], json!({
                "name": string(),
                "version": { "type": "integer", "minimum": 1 },
                "count": { "type": "integer", "minimum": 0 },
                "last_seen": rfc3339,
                "fields": strings,
                "schema": nullable(json!({ "type": "object", "description": "the payload's JSON Schema, where the application knows it" })),
            })) },
        })),
        "NewSubscription": closed(&["webhook_url", "event_names"], json!({
            "webhook_url": { "type": "string", "minLength": 1, "description": "https unless configured otherwise; a host that does not resolve, or resolves to a private address, is refused unless allowed" },
            "event_names": names,
            "active": { "type": "boolean", "default": true },
            "filters": { "type": "object", "additionalProperties": true },
            "description": string(),
        })),
        "SubscriptionChange": closed(&[], json!({
            "webhook_url": nullable(non_empty()),
            "event_names": nullable(names),
            "active": nullable(json!({ "type": "boolean" })),
            "filters": nullable(json!({ "type": "object", "additionalProperties": true })),
            "description": nullable(string()),
        })),
        "Subscription": object(&subscription_required, subscription_properties),
        "CreatedSubscription": object(&created_required, created),
        "Subscriptions": object(&["subscriptions"], json!({
            "subscriptions": { "type": "array", "items": schema_ref("Subscription") },
        })),
        "Deleted": object(&["deleted"], json!({ "deleted": string() })),
        "Delivery": object(
            &["id", "webhook_id", "subscription_id", "event_id", "event_name", "url", "attempt", "at", "status", "latency_ms", "response", "error", "succeeded", "replay"],
            json!({
                "id": string(),
                "webhook_id": string(),
                "subscription_id": string(),
                "event_id": string(),
                "event_name": string(),
                "url": string(),
                "attempt": { "type": "integer", "minimum": 1 },
                "at": rfc3339,
                "status": nullable(json!({ "type": "integer" })),
                "latency_ms": { "type": "integer", "minimum": 0 },
                "response": nullable(string()),
                "error": nullable(string()),
                "succeeded": { "type": "boolean" },
                "replay": { "type": "boolean" },
            }),
        ),
        "Deliveries": object(&["deliveries"], json!({
            "deliveries": { "type": "array", "items": schema_ref("Delivery") },
        })),
        "TestWebhook": closed(&["webhook_url"], json!({
            "webhook_url": non_empty(),
            "event_name": { "type": "string", "default": "webhook.test" },
        })),
        "TestDelivery": object(&["url", "event_name", "webhook_id", "subscription_id", "secret", "status", "latency_ms", "response", "error", "succeeded"], json!({
            "url": string(),
            "event_name": string(),
            "webhook_id": string(),
            "subscription_id": nullable(json!({ "type": "string", "description": "the subscription with this URL, whose secret signed the sample" })),
            "secret": nullable(json!({ "type": "string", "description": "the one-off secret that signed the sample, when no subscription has this URL" })),
            "status": nullable(json!({ "type": "integer" })),
            "latency_ms": { "type": "integer", "minimum": 0 },
            "response": nullable(string()),
            "error": nullable(string()),
            "succeeded": { "type": "boolean" },
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router is built from is described with exactly its
    /// methods, and the description names no other.
    #[test]
    fn every_route_is_described() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let served = crate::routes().served;
        for (path, methods) in &served {
            let item = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is served but not described"));
            let mut described: Vec<String> = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(|k| k.to_ascii_uppercase())
                .collect();
            described.sort();
            let mut methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
            methods.sort();
            assert_eq!(described, methods, "{path}");
        }
        for path in paths.keys() {
            assert!(
                served.iter().any(|(p, _)| p == path),
                "{path} is described but not served"
            );
        }
    }

    /// Every `$ref` points at a schema the document has, alone; no
    /// `required` is empty.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, schemas: &Map<String, Value>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let name = target.strip_prefix("#/components/schemas/").unwrap();
                        assert!(schemas.contains_key(name), "{target}");
                        // OpenAPI 3.0 ignores a reference's siblings.
                        assert_eq!(map.len(), 1, "{value}");
                    }
                    // ..and wants `required` absent rather than empty.
                    if let Some(Value::Array(required)) = map.get("required") {
                        assert!(!required.is_empty(), "{value}");
                    }
                    map.values().for_each(|v| walk(v, schemas));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, schemas)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, doc["components"]["schemas"].as_object().unwrap());
    }
}
