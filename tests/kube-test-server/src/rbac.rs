//! Authentication by bearer token and authorisation by RBAC: ServiceAccounts, Roles,
//! ClusterRoles and their bindings loaded from YAML manifests, evaluated as the apiserver's RBAC
//! authoriser does (a request is allowed if any rule of any role bound to the user allows it).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::Error;

/// The token of the cluster administrator (group `system:masters`).
pub(crate) const ADMIN_TOKEN: &str = "fake-kube-admin-token";
const SA_TOKEN_PREFIX: &str = "fake-sa-token.";

pub(crate) fn service_account_token(namespace: &str, name: &str) -> String {
    format!("{SA_TOKEN_PREFIX}{namespace}.{name}")
}

/// A token of the account for another audience (`sts.amazonaws.com`): the API server refuses
/// it, as it refuses a projected token whose audience is not its own.
pub(crate) fn audience_token(namespace: &str, name: &str, audience: &str) -> String {
    format!("{SA_TOKEN_PREFIX}{namespace}.{name}@{audience}")
}

/// A declared ServiceAccount.
#[derive(Debug, Default)]
struct Account {
    /// Its `automountServiceAccountToken`, if it sets one.
    automount: Option<bool>,
    annotations: BTreeMap<String, String>,
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
}

impl User {
    fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What a request does, as the authoriser sees it.
#[derive(Debug, Clone)]
pub(crate) struct Attributes {
    pub(crate) verb: String,
    /// `""` for core, `apps`, …
    pub(crate) api_group: String,
    /// `pods`, or `pods/log` with a subresource.
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

impl Rule {
    fn allows(&self, attrs: &Attributes) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == attrs.resource
                || r.strip_prefix("*/").is_some_and(|sub| attrs.resource.split_once('/').is_some_and(|(_, s)| s == sub))
        });
        any(&self.api_groups, &attrs.api_group)
            && resource_ok
            && any(&self.verbs, &attrs.verb)
            && (self.resource_names.is_empty()
                || attrs.name.as_ref().is_some_and(|n| self.resource_names.iter().any(|r| r == n)))
    }
}

#[derive(Debug, Clone)]
struct Subject {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Clone)]
struct Binding {
    /// `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// The loaded RBAC objects.
#[derive(Debug, Default)]
pub(crate) struct Rbac {
    /// Declared ServiceAccounts.
    service_accounts: BTreeMap<(String, String), Account>,
    /// Keyed by (kind, namespace or "", name).
    roles: BTreeMap<(String, String, String), Vec<Rule>>,
    bindings: BTreeMap<(String, String, String), Binding>,
}

/// Parses YAML text with one or more documents into JSON values, skipping empty documents.
pub(crate) fn parse_yaml(path: &str, text: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| Error::Yaml { path: path.to_owned(), message: e.to_string() })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

impl Rbac {
    /// Loads every `*.yaml`/`*.yml` file of `dir` (sorted by name).
    pub(crate) fn load_dir(dir: &Path) -> Result<Rbac, Error> {
        let io = |source| Error::Io { path: dir.to_owned(), source };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut rbac = Rbac::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
            let label = file.display().to_string();
            for doc in parse_yaml(&label, &text)? {
                rbac.apply(&label, &doc)?;
            }
        }
        Ok(rbac)
    }

    /// Adds or replaces one object; kinds other than the RBAC ones are ignored.
    pub(crate) fn apply(&mut self, path: &str, doc: &Value) -> Result<(), Error> {
        let bad = |message: String| Error::Manifest { path: path.to_owned(), message };
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let namespace = doc.pointer("/metadata/namespace").and_then(Value::as_str);
        let namespaced = matches!(kind, "ServiceAccount" | "Role" | "RoleBinding");
        let cluster = matches!(kind, "ClusterRole" | "ClusterRoleBinding");
        if !namespaced && !cluster {
            return Ok(());
        }
        if name.is_empty() {
            return Err(bad(format!("a {kind} without metadata.name")));
        }
        let namespace = match (namespaced, namespace) {
            (true, Some(ns)) => ns.to_owned(),
            (true, None) => {
                return Err(bad(format!(
                    "{kind} {name:?} has no metadata.namespace (the test server applies no kustomize transformations)"
                )));
            }
            (false, _) => String::new(),
        };
        match kind {
            "ServiceAccount" => {
                let automount = doc.get("automountServiceAccountToken").and_then(Value::as_bool);
                let annotations = doc
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
                self.service_accounts.insert((namespace, name.to_owned()), Account { automount, annotations });
            }
            "Role" | "ClusterRole" => {
                let mut rules = Vec::new();
                for (i, rule) in doc.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    let rule = Rule {
                        api_groups: strings(rule.get("apiGroups")),
                        resources: strings(rule.get("resources")),
                        verbs: strings(rule.get("verbs")),
                        resource_names: strings(rule.get("resourceNames")),
                    };
                    if rule.verbs.is_empty() || rule.resources.is_empty() {
                        return Err(bad(format!("{kind} {name:?} rule {i} needs verbs and resources")));
                    }
                    rules.push(rule);
                }
                self.roles.insert((kind.to_owned(), namespace, name.to_owned()), rules);
            }
            _ => {
                let role_kind = doc.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
                let role_name = doc.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
                let allowed_kinds: &[&str] =
                    if kind == "RoleBinding" { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
                if !allowed_kinds.contains(&role_kind) || role_name.is_empty() {
                    return Err(bad(format!("{kind} {name:?} has an invalid roleRef")));
                }
                let subjects = doc
                    .get("subjects")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|s| Subject {
                        kind: s.get("kind").and_then(Value::as_str).unwrap_or("").to_owned(),
                        name: s.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                        namespace: s.get("namespace").and_then(Value::as_str).map(str::to_owned),
                    })
                    .collect();
                let binding = Binding {
                    namespace: namespaced.then(|| namespace.clone()),
                    role_kind: role_kind.to_owned(),
                    role_name: role_name.to_owned(),
                    subjects,
                };
                self.bindings.insert((kind.to_owned(), namespace, name.to_owned()), binding);
            }
        }
        Ok(())
    }

    /// Whether ServiceAccount `namespace/name` lets pods mount its token by default (its
    /// `automountServiceAccountToken`, true unless it says false).
    pub(crate) fn automounts_token(&self, namespace: &str, name: &str) -> bool {
        self.service_accounts.get(&(namespace.to_owned(), name.to_owned())).and_then(|a| a.automount).unwrap_or(true)
    }

    /// The annotations of ServiceAccount `namespace/name` (empty if it is not declared).
    pub(crate) fn service_account_annotations(&self, namespace: &str, name: &str) -> BTreeMap<String, String> {
        self.service_accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|a| a.annotations.clone())
            .unwrap_or_default()
    }

    /// The user a bearer token stands for, if it is valid.
    pub(crate) fn authenticate(&self, token: &str) -> Option<User> {
        if token == ADMIN_TOKEN {
            return Some(User {
                name: "kubernetes-admin".to_owned(),
                groups: vec!["system:masters".to_owned(), "system:authenticated".to_owned()],
            });
        }
        let (namespace, name) = token.strip_prefix(SA_TOKEN_PREFIX)?.split_once('.')?;
        let known = name == "default" || self.service_accounts.contains_key(&(namespace.to_owned(), name.to_owned()));
        known.then(|| User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        })
    }

    fn subject_matches(subject: &Subject, binding_namespace: Option<&str>, user: &User) -> bool {
        match subject.kind.as_str() {
            "User" => subject.name == user.name,
            "Group" => user.groups.contains(&subject.name),
            "ServiceAccount" => {
                let namespace = subject.namespace.as_deref().or(binding_namespace).unwrap_or("");
                user.name == format!("system:serviceaccount:{namespace}:{}", subject.name)
            }
            _ => false,
        }
    }

    /// Whether `user` may do `attrs`.
    pub(crate) fn authorize(&self, user: &User, attrs: &Attributes) -> bool {
        if user.is_admin() {
            return true;
        }
        self.bindings.values().any(|binding| {
            let applies = match (&binding.namespace, &attrs.namespace) {
                (None, _) => true,
                (Some(bound), Some(ns)) => bound == ns,
                (Some(_), None) => false,
            };
            if !applies
                || !binding.subjects.iter().any(|s| Self::subject_matches(s, binding.namespace.as_deref(), user))
            {
                return false;
            }
            let role_namespace =
                if binding.role_kind == "Role" { binding.namespace.clone().unwrap_or_default() } else { String::new() };
            self.roles
                .get(&(binding.role_kind.clone(), role_namespace, binding.role_name.clone()))
                .is_some_and(|rules| rules.iter().any(|r| r.allows(attrs)))
        })
    }
}

/// The reason part of a 403, as the apiserver words it.
pub(crate) fn forbidden_reason(user: &User, attrs: &Attributes) -> String {
    let scope = match &attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    format!(
        "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.resource, attrs.api_group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: sched, namespace: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: launcher, namespace: app}
rules:
  - apiGroups: ['']
    resources: [pods]
    verbs: [get, list]
  - apiGroups: ['']
    resources: [pods/log]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: launcher, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: launcher}
subjects:
  - {kind: ServiceAccount, name: sched, namespace: app}
";

    fn attrs(verb: &str, resource: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: String::new(),
            resource: resource.into(),
            namespace: Some(ns.into()),
            name: None,
        }
    }

    #[test]
    fn roles_bound_to_service_accounts() {
        let mut rbac = Rbac::default();
        for doc in parse_yaml("test", MANIFESTS).expect("parses") {
            rbac.apply("test", &doc).expect("applies");
        }
        let user = rbac.authenticate(&service_account_token("app", "sched")).expect("known account");
        assert!(rbac.authenticate(&service_account_token("app", "nobody")).is_none());
        assert!(rbac.authenticate("garbage").is_none());
        assert!(rbac.authorize(&user, &attrs("get", "pods", "app")));
        assert!(rbac.authorize(&user, &attrs("get", "pods/log", "app")));
        assert!(!rbac.authorize(&user, &attrs("create", "pods", "app")));
        assert!(!rbac.authorize(&user, &attrs("get", "pods", "other")));
        assert!(!rbac.authorize(&user, &attrs("get", "pods/status", "app")));
        assert_eq!(
            forbidden_reason(&user, &attrs("create", "pods", "app")),
            "User \"system:serviceaccount:app:sched\" cannot create resource \"pods\" in API group \"\" in the namespace \"app\""
        );
    }
}
