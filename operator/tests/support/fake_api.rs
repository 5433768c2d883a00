//! An in-memory Kubernetes API server, served to a real `kube::Client` as a tower service.
//!
//! The Kubernetes API server cannot run here, so the controller tests talk to this stand-in
//! through the real client stack (request building, serialisation, server-side apply content
//! types, status subresource, watches). It keeps objects as JSON and implements the subset of
//! API semantics the operator relies on:
//!
//! * get / list (with `labelSelector`) / create / replace (with resourceVersion conflicts) /
//!   merge patch / server-side apply / delete, on any `/api` or `/apis` path;
//! * the `status` subresource (spec writes never touch status and vice versa);
//! * `metadata.generation` bumped on spec changes, `resourceVersion` on every write;
//! * watches (`?watch=true`) streaming ADDED/MODIFIED/DELETED from a resourceVersion;
//! * garbage collection of dependents by ownerReference uid, on request;
//! * a request log and one-shot failure injection for error-path tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// Where an object lives: the collection path without the namespace, the namespace, the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// `/api/v1/pods`, `/apis/haproxy-peers.io/v1alpha1/peergroups`, …
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
    /// The HTTP status answered (0 while the request is in flight; 200 for a watch).
    pub status: u16,
    seq: u64,
}

#[derive(Debug, Clone)]
struct WatchEvent {
    rv: u64,
    key: ObjKey,
    kind: &'static str,
    object: Value,
}

/// The store's lock; on release it broadcasts what was written meanwhile to live watches.
struct Guard<'a> {
    st: std::sync::MutexGuard<'a, State>,
    events: &'a broadcast::Sender<WatchEvent>,
}

impl std::ops::Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.st
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let from = self.st.broadcast_rv;
        for e in self.st.history.iter().filter(|e| e.rv > from) {
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(e.clone());
        }
        self.st.broadcast_rv = self.st.rv;
    }
}

#[derive(Default)]
struct State {
    broadcast_rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    uid: u64,
    history: Vec<WatchEvent>,
    log: Vec<LoggedRequest>,
    seq: u64,
    /// (method, path substring, status) failures to inject, each used once.
    failures: Vec<(Method, String, u16)>,
}

/// The fake API server. Cheap to clone; all clones share the same store.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<WatchEvent>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApi {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        FakeApi {
            state: Arc::default(),
            events,
        }
    }

    /// A real `kube::Client` whose transport is this fake.
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    fn lock(&self) -> Guard<'_> {
        // A test that panicked while holding the lock already failed; keep serving the others.
        Guard {
            st: self.state.lock().unwrap_or_else(|e| e.into_inner()),
            events: &self.events,
        }
    }

    /// Stores an object as a client would create it (uid, resourceVersion, generation set).
    pub fn seed(&self, path: &str, object: Value) -> Value {
        let (key, _) = parse_path(&format!(
            "{path}/{}",
            object["metadata"]["name"].as_str().unwrap_or_default()
        ))
        .expect("seed path is a collection path");
        let mut st = self.lock();
        let obj = st.create(key, object).expect("seeded object is new");
        drop(st);
        obj
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        let (key, _) = parse_path(path)?;
        self.lock().objects.get(&key).cloned()
    }

    /// Replaces an object as another actor would (e.g. the kubelet updating a pod's IP).
    pub fn put(&self, path: &str, object: Value) {
        let (key, _) = parse_path(path).expect("object path");
        let mut st = self.lock();
        st.write(key, object, true);
    }

    /// Deletes an object (without garbage collection).
    pub fn delete(&self, path: &str) -> Option<Value> {
        let (key, _) = parse_path(path)?;
        self.lock().remove(&key)
    }

    /// Deletes an object and, like the Kubernetes garbage collector, every object that names it
    /// (by uid) in its ownerReferences, transitively. Returns the paths of the dependents removed.
    pub fn delete_with_gc(&self, path: &str) -> Vec<ObjKey> {
        let mut removed = Vec::new();
        let Some(root) = self.delete(path) else {
            return removed;
        };
        let mut uids = vec![root["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string()];
        let mut st = self.lock();
        while let Some(uid) = uids.pop() {
            let dependents: Vec<ObjKey> = st
                .objects
                .iter()
                .filter(|(_, o)| owner_uids(o).contains(&uid))
                .map(|(k, _)| k.clone())
                .collect();
            for k in dependents {
                if let Some(o) = st.remove(&k) {
                    uids.push(
                        o["metadata"]["uid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                    removed.push(k);
                }
            }
        }
        removed
    }

    /// Every stored object under a collection (all namespaces), e.g. `/api/v1/secrets`.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn all_keys(&self) -> Vec<ObjKey> {
        self.lock().objects.keys().cloned().collect()
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// The next request with this method whose path contains `path_part` fails with `status`.
    pub fn fail_next(&self, method: Method, path_part: &str, status: u16) {
        self.lock()
            .failures
            .push((method, path_part.to_string(), status));
    }

    async fn handle(&self, req: Request<kube::client::Body>) -> Response<BoxBody> {
        let mut seq = None;
        let response = self.serve(req, &mut seq).await;
        if let Some(seq) = seq {
            let mut st = self.lock();
            if let Some(entry) = st.log.iter_mut().find(|r| r.seq == seq) {
                entry.status = response.status().as_u16();
            }
        }
        response
    }

    async fn serve(
        &self,
        req: Request<kube::client::Body>,
        logged: &mut Option<u64>,
    ) -> Response<BoxBody> {
        let (parts, body) = req.into_parts();
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => return status_response(400, "BadRequest", &format!("unreadable body: {e}")),
        };
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let params: BTreeMap<String, String> = url_params(&query);
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes).or_else(|_| serde_yaml::from_slice(&bytes)) {
                Ok(v) => v,
                Err(e) => {
                    return status_response(
                        400,
                        "BadRequest",
                        &format!("body is not JSON/YAML: {e}"),
                    )
                }
            }
        };
        {
            let mut st = self.lock();
            st.seq += 1;
            let seq = st.seq;
            *logged = Some(seq);
            st.log.push(LoggedRequest {
                method: parts.method.clone(),
                path: path.clone(),
                query: query.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
                status: 0,
                seq,
            });
            if let Some(i) = st
                .failures
                .iter()
                .position(|(m, p, _)| *m == parts.method && path.contains(p.as_str()))
            {
                let (_, _, code) = st.failures.remove(i);
                return status_response(code, "InternalError", "injected failure");
            }
        }
        let Some((key, sub)) = parse_path(&path) else {
            return status_response(404, "NotFound", &format!("no such path {path}"));
        };
        let is_status = sub.as_deref() == Some("status");
        let is_collection = key.name.is_empty();
        match (parts.method.clone(), is_collection) {
            (Method::GET, true) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                self.watch(key, &params)
            }
            (Method::GET, true) => {
                let selector = params.get("labelSelector").cloned().unwrap_or_default();
                let st = self.lock();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        k.resource == key.resource
                            && (key.namespace.is_none() || k.namespace == key.namespace)
                    })
                    .filter(|(_, o)| selector_matches(&selector, &o["metadata"]["labels"]))
                    .map(|(_, o)| o.clone())
                    .collect();
                let list = json!({
                    "apiVersion": api_version_of(&key.resource),
                    "kind": "List",
                    "metadata": {"resourceVersion": st.rv.to_string()},
                    "items": items,
                });
                json_response(200, &list)
            }
            (Method::GET, false) => match self.lock().objects.get(&key) {
                Some(o) => json_response(200, o),
                None => not_found(&key),
            },
            (Method::POST, true) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if name.is_empty() {
                    return status_response(422, "Invalid", "metadata.name is required");
                }
                let key = ObjKey { name, ..key };
                match self.lock().create(key, body) {
                    Ok(o) => json_response(201, &o),
                    Err(k) => {
                        status_response(409, "AlreadyExists", &format!("{} already exists", k.name))
                    }
                }
            }
            (Method::PUT, false) => {
                let mut st = self.lock();
                let Some(existing) = st.objects.get(&key).cloned() else {
                    return not_found(&key);
                };
                let sent_rv = body["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                if !sent_rv.is_empty()
                    && sent_rv
                        != existing["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                {
                    return status_response(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again");
                }
                let merged = if is_status {
                    with_status(existing, body["status"].clone())
                } else {
                    keep_status(body, &existing)
                };
                let o = st.write(key, merged, !is_status);
                json_response(200, &o)
            }
            (Method::PATCH, false) => {
                let ct = content_type.unwrap_or_default();
                let mut st = self.lock();
                let existing = st.objects.get(&key).cloned();
                let apply = ct.contains("apply-patch");
                if apply && params.get("fieldManager").is_none_or(String::is_empty) {
                    return status_response(
                        422,
                        "Invalid",
                        "fieldManager is required for apply patch",
                    );
                }
                let new = match (existing, apply, is_status) {
                    (None, true, false) => {
                        return match st.create(key, body) {
                            Ok(o) => json_response(201, &o),
                            Err(k) => status_response(409, "AlreadyExists", &k.name),
                        }
                    }
                    (None, _, _) => return not_found(&key),
                    // Server-side apply by a single manager: the applied object is the whole
                    // intent, so fields it no longer sets disappear (as they do for the owner).
                    (Some(old), true, false) => keep_status(keep_server_fields(body, &old), &old),
                    (Some(old), true, true) => with_status(old, body["status"].clone()),
                    (Some(old), false, true) => {
                        let mut status = old["status"].clone();
                        merge_patch(&mut status, &body["status"]);
                        with_status(old, status)
                    }
                    (Some(old), false, false) => {
                        let mut o = old.clone();
                        merge_patch(&mut o, &body);
                        keep_status(o, &old)
                    }
                };
                let o = st.write(key, new, !is_status);
                json_response(200, &o)
            }
            (Method::DELETE, false) => {
                let mut st = self.lock();
                let Some(existing) = st.objects.get(&key) else {
                    return not_found(&key);
                };
                // DeleteOptions.preconditions: the object must still be the one the client saw.
                for (field, wanted) in [
                    ("uid", &body["preconditions"]["uid"]),
                    ("resourceVersion", &body["preconditions"]["resourceVersion"]),
                ] {
                    let actual = existing["metadata"][field].as_str().unwrap_or_default();
                    if let Some(wanted) = wanted.as_str().filter(|w| *w != actual) {
                        return status_response(
                            409,
                            "Conflict",
                            &format!(
                                "Precondition failed: {field} in precondition: {wanted}, \
                                 {field} in object meta: {actual}"
                            ),
                        );
                    }
                }
                match st.remove(&key) {
                    Some(o) => json_response(200, &o),
                    None => not_found(&key),
                }
            }
            (m, _) => status_response(405, "MethodNotAllowed", &format!("{m} {path}")),
        }
    }

    fn watch(&self, key: ObjKey, params: &BTreeMap<String, String>) -> Response<BoxBody> {
        let selector = params.get("labelSelector").cloned().unwrap_or_default();
        let from: u64 = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let matches = {
            let key = key.clone();
            let selector = selector.clone();
            move |e: &WatchEvent| {
                e.key.resource == key.resource
                    && (key.namespace.is_none() || e.key.namespace == key.namespace)
                    && selector_matches(&selector, &e.object["metadata"]["labels"])
            }
        };
        let mut rx = self.events.subscribe();
        let backlog: Vec<WatchEvent> = {
            let st = self.lock();
            st.history
                .iter()
                .filter(|e| e.rv > from && matches(e))
                .cloned()
                .collect()
        };
        let (tx, out) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(64);
        tokio::spawn(async move {
            let mut last = from;
            for e in backlog {
                last = e.rv;
                if tx
                    .send(Ok(http_body::Frame::data(watch_line(&e))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            loop {
                match rx.recv().await {
                    Ok(e) if e.rv > last && matches(&e) => {
                        last = e.rv;
                        if tx
                            .send(Ok(http_body::Frame::data(watch_line(&e))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let stream = tokio_stream_from(out);
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
            .unwrap_or_else(|_| status_response(500, "InternalError", "response"))
    }
}

impl State {
    fn create(&mut self, key: ObjKey, mut obj: Value) -> Result<Value, ObjKey> {
        if self.objects.contains_key(&key) {
            return Err(key);
        }
        self.uid += 1;
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(format!("uid-{:04}", self.uid)));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        if let Some(ns) = &key.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
        Ok(self.store(key, obj, "ADDED"))
    }

    /// Writes over an existing object (or creates it), bumping generation on spec changes.
    fn write(&mut self, key: ObjKey, mut obj: Value, spec_write: bool) -> Value {
        let Some(old) = self.objects.get(&key).cloned() else {
            return self.create(key.clone(), obj).unwrap_or_default();
        };
        let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        if spec_write && strip_volatile(&old) != strip_volatile(&obj) {
            generation += 1;
        }
        let meta = meta_mut(&mut obj);
        for f in ["uid", "creationTimestamp", "namespace"] {
            if let Some(v) = old["metadata"].get(f) {
                meta.insert(f.into(), v.clone());
            }
        }
        meta.insert("generation".into(), json!(generation));
        if strip_volatile(&old) == strip_volatile(&obj) && old.get("status") == obj.get("status") {
            return old; // no-op write: Kubernetes does not bump resourceVersion either
        }
        self.store(key, obj, "MODIFIED")
    }

    fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let o = self.objects.remove(key)?;
        self.rv += 1;
        let ev = WatchEvent {
            rv: self.rv,
            key: key.clone(),
            kind: "DELETED",
            object: o.clone(),
        };
        self.history.push(ev);
        Some(o)
    }

    fn store(&mut self, key: ObjKey, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(api_version_of(&key.resource));
        }
        self.objects.insert(key.clone(), obj.clone());
        self.history.push(WatchEvent {
            rv: self.rv,
            key,
            kind,
            object: obj.clone(),
        });
        obj
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn watch_line(e: &WatchEvent) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": e.kind, "object": e.object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

fn strip_volatile(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "resourceVersion",
            "generation",
            "managedFields",
            "uid",
            "creationTimestamp",
        ] {
            m.remove(f);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

fn with_status(mut obj: Value, status: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        if status.is_null() {
            m.remove("status");
        } else {
            m.insert("status".into(), status);
        }
    }
    obj
}

fn keep_status(mut new: Value, old: &Value) -> Value {
    if let Some(m) = new.as_object_mut() {
        match old.get("status") {
            Some(s) => {
                m.insert("status".into(), s.clone());
            }
            None => {
                m.remove("status");
            }
        }
    }
    new
}

fn keep_server_fields(mut new: Value, old: &Value) -> Value {
    // Labels/annotations set by other actors would survive a real apply; this fake has one
    // manager, so only the server-owned metadata is carried over.
    let meta = meta_mut(&mut new);
    for f in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
        if let Some(v) = old["metadata"].get(f) {
            meta.insert(f.into(), v.clone());
        }
    }
    new
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target
                .as_object_mut()
                .expect("target was just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn owner_uids(o: &Value) -> Vec<String> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `/api/v1/namespaces/ns/pods/name/status` -> (key, Some("status")). Collection paths have an
/// empty name.
pub fn parse_path(path: &str) -> Option<(ObjKey, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *segs.first()? {
        "api" => (format!("/api/{}", segs.get(1)?), segs.get(2..)?),
        "apis" => (
            format!("/apis/{}/{}", segs.get(1)?, segs.get(2)?),
            segs.get(3..)?,
        ),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let plural = rest.first()?;
    let name = rest.get(1).copied().unwrap_or_default().to_string();
    let sub = rest.get(2).map(|s| s.to_string());
    Some((
        ObjKey {
            resource: format!("{prefix}/{plural}"),
            namespace,
            name,
        },
        sub,
    ))
}

fn api_version_of(resource: &str) -> String {
    let segs: Vec<&str> = resource.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", v, ..] => v.to_string(),
        ["apis", g, v, ..] => format!("{g}/{v}"),
        _ => String::new(),
    }
}

fn url_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Kubernetes label selector syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`.
pub fn selector_matches(selector: &str, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    split_requirements(selector).iter().all(|req| {
        let req = req.trim();
        if req.is_empty() {
            return true;
        }
        if let Some((k, rest)) = req.split_once(" notin ") {
            let set = parse_set(rest);
            return label(k.trim()).is_none_or(|v| !set.contains(&v.to_string()));
        }
        if let Some((k, rest)) = req.split_once(" in ") {
            let set = parse_set(rest);
            return label(k.trim()).is_some_and(|v| set.contains(&v.to_string()));
        }
        if let Some((k, v)) = req.split_once("!=") {
            return label(k.trim()) != Some(v.trim());
        }
        if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            return label(k.trim()) == Some(v.trim());
        }
        if let Some(k) = req.strip_prefix('!') {
            return label(k.trim()).is_none();
        }
        label(req).is_some()
    })
}

fn split_requirements(selector: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn parse_set(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(|x| x.trim().to_string())
        .collect()
}

fn json_response(code: u16, v: &Value) -> Response<BoxBody> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header("content-type", "application/json")
        .body(BodyExt::boxed_unsync(Full::new(Bytes::from(
            serde_json::to_vec(v).unwrap_or_default(),
        ))))
        .unwrap_or_else(|_| Response::new(BodyExt::boxed_unsync(Full::new(Bytes::new()))))
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<BoxBody> {
    json_response(
        code,
        &json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason, "message": message, "code": code}),
    )
}

fn not_found(key: &ObjKey) -> Response<BoxBody> {
    status_response(
        404,
        "NotFound",
        &format!("{} \"{}\" not found", key.resource, key.name),
    )
}
