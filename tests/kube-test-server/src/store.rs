//! The object store: objects as JSON keyed by resource, namespace and name, one global
//! monotonically increasing resourceVersion (like etcd's revision), and a bounded history of
//! change events that watches replay and subscribe to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

/// The resources this server stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Resource {
    Pods,
    Events,
    Namespaces,
    Secrets,
    ConfigMaps,
    Deployments,
}

impl Resource {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Events => "Event",
            Resource::Namespaces => "Namespace",
            Resource::Secrets => "Secret",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Deployments => "Deployment",
        }
    }

    pub(crate) fn list_kind(self) -> String {
        format!("{}List", self.kind())
    }

    /// The plural name in URLs and RBAC rules.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Events => "events",
            Resource::Namespaces => "namespaces",
            Resource::Secrets => "secrets",
            Resource::ConfigMaps => "configmaps",
            Resource::Deployments => "deployments",
        }
    }

    /// The API group (`""` for core).
    pub(crate) fn group(self) -> &'static str {
        match self {
            Resource::Deployments => "apps",
            _ => "",
        }
    }

    /// `apiVersion` of its objects.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Resource::Deployments => "apps/v1",
            _ => "v1",
        }
    }

    /// The name the apiserver's messages use: the plural, qualified by its group outside core
    /// (`pods`, `deployments.apps`).
    pub(crate) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }
}

/// The kind of change a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change, with the object before it (for watchers whose selector the object leaves or
/// enters).
#[derive(Debug)]
pub(crate) struct WatchEvent {
    pub(crate) resource: Resource,
    pub(crate) change: Change,
    pub(crate) rv: u64,
    pub(crate) object: Value,
    pub(crate) previous: Option<Value>,
}

/// Where a watch starts.
pub(crate) enum Replay {
    /// The events after the requested resourceVersion, then live ones.
    Events(Vec<Arc<WatchEvent>>),
    /// The requested resourceVersion was compacted away; the oldest one still available.
    TooOld { oldest: u64 },
}

pub(crate) struct Store {
    rv: u64,
    objects: HashMap<Resource, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    /// Every event with a resourceVersion above this one is still in `history`.
    compacted: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    creates: Vec<(String, String)>,
    create_counts: HashMap<(String, String), u32>,
    uid_counter: u64,
}

/// The resourceVersion of a stored object (0 if it has none).
pub(crate) fn resource_version(object: &Value) -> u64 {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
    }
}

impl Store {
    pub(crate) fn new(history_limit: usize) -> Store {
        let (tx, _) = broadcast::channel(8192);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            tx,
            creates: Vec::new(),
            create_counts: HashMap::new(),
            uid_counter: 0,
        }
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    /// A new UID, unique for this server and shaped like Kubernetes' UUIDs.
    pub(crate) fn new_uid(&mut self) -> String {
        self.uid_counter += 1;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let a = (nanos as u64) ^ 0x9e37_79b9_7f4a_7c15;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            (a as u16) & 0xfff,
            (self.uid_counter as u16) & 0xfff,
            self.uid_counter & 0xffff_ffff_ffff
        )
    }

    pub(crate) fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&resource)?.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Objects of `resource` in `namespace` (all namespaces if `None`), in key order.
    pub(crate) fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<&Value> {
        let Some(objects) = self.objects.get(&resource) else { return Vec::new() };
        objects.iter().filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns)).map(|(_, v)| v).collect()
    }

    /// Stores a new object, stamping its resourceVersion, and announces it as ADDED.
    pub(crate) fn insert(&mut self, resource: Resource, namespace: &str, name: &str, mut object: Value) -> Value {
        self.rv += 1;
        set_rv(&mut object, self.rv);
        let key = (namespace.to_owned(), name.to_owned());
        self.objects.entry(resource).or_default().insert(key.clone(), object.clone());
        if resource == Resource::Pods {
            self.creates.push(key.clone());
            *self.create_counts.entry(key).or_default() += 1;
        }
        self.publish(resource, Change::Added, object.clone(), None);
        object
    }

    /// Replaces a stored object, stamping a new resourceVersion, and announces it as MODIFIED.
    /// Returns `None` if the object does not exist.
    pub(crate) fn replace(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Option<Value> {
        let key = (namespace.to_owned(), name.to_owned());
        let slot = self.objects.get_mut(&resource)?.get_mut(&key)?;
        self.rv += 1;
        set_rv(&mut object, self.rv);
        let previous = std::mem::replace(slot, object.clone());
        self.publish(resource, Change::Modified, object.clone(), Some(previous));
        Some(object)
    }

    /// Removes an object and announces it as DELETED, with a new resourceVersion on the final
    /// state (as the apiserver does).
    pub(crate) fn remove(&mut self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = self.objects.get_mut(&resource)?.remove(&key)?;
        self.rv += 1;
        set_rv(&mut object, self.rv);
        self.publish(resource, Change::Deleted, object.clone(), None);
        Some(object)
    }

    fn publish(&mut self, resource: Resource, change: Change, object: Value, previous: Option<Value>) {
        let event = Arc::new(WatchEvent { resource, change, rv: self.rv, object, previous });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // Nobody listening is fine.
        let _ = self.tx.send(event);
    }

    /// Subscribes to live events. Called with the store locked, together with [`Store::replay`]
    /// or a snapshot, so that no event falls between the two.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    /// The events of `resource` after `since`, or `TooOld` if some were compacted away.
    pub(crate) fn replay(&self, resource: Resource, since: u64) -> Replay {
        if since < self.compacted {
            return Replay::TooOld { oldest: self.compacted + 1 };
        }
        Replay::Events(self.history.iter().filter(|e| e.rv > since && e.resource == resource).cloned().collect())
    }

    /// Whether a list continue token minted at `rv` is still usable.
    pub(crate) fn is_compacted(&self, rv: u64) -> bool {
        rv < self.compacted
    }

    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub(crate) fn create_count(&self, namespace: &str, name: &str) -> u32 {
        self.create_counts.get(&(namespace.to_owned(), name.to_owned())).copied().unwrap_or(0)
    }

    pub(crate) fn created_pods(&self) -> Vec<(String, String)> {
        self.creates.clone()
    }

    pub(crate) fn created_len(&self) -> usize {
        self.creates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn resource_versions_increase_and_history_is_bounded() {
        let mut store = Store::new(2);
        let a = store.insert(Resource::Pods, "ns", "a", pod("a"));
        let b = store.insert(Resource::Pods, "ns", "b", pod("b"));
        assert!(resource_version(&b) > resource_version(&a));
        let removed = store.remove(Resource::Pods, "ns", "a").expect("a exists");
        assert!(resource_version(&removed) > resource_version(&b));
        // a's ADDED fell out of the window: a watch from before it cannot be served.
        assert!(matches!(store.replay(Resource::Pods, resource_version(&a) - 1), Replay::TooOld { .. }));
        assert!(matches!(store.replay(Resource::Pods, resource_version(&a)), Replay::Events(e) if e.len() == 2));
        match store.replay(Resource::Pods, resource_version(&b)) {
            Replay::Events(events) => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].change, Change::Deleted);
            }
            Replay::TooOld { .. } => panic!("b's version is still in the window"),
        }
        store.compact();
        assert!(matches!(store.replay(Resource::Pods, resource_version(&b)), Replay::TooOld { .. }));
        assert!(matches!(store.replay(Resource::Pods, store.current_rv()), Replay::Events(e) if e.is_empty()));
    }
}
