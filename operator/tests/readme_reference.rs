//! README.md's "PeerGroup reference" table lists every field of the CRD's `spec`, nothing else,
//! with the CRD's type, default and required fields, so the documentation cannot drift from the
//! schema the API server enforces.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

const HEADING: &str = "## PeerGroup reference";
/// Standard Kubernetes types: one row, documented upstream, not broken into their own fields.
const OPAQUE: &[(&str, &str)] = &[("selector", "LabelSelector")];

/// One row: type and default as the README must show them.
#[derive(Debug, PartialEq, Eq)]
struct Field {
    type_: String,
    default: Expected,
}

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// The default cell is exactly this.
    Exactly(String),
    /// No schema default: the cell explains in words (not a bare `literal`).
    Prose,
}

/// `spec` of the checked-in CRD (operator/tests/crd.rs keeps the file equal to the types).
fn spec_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/peergroups.yaml");
    let text = std::fs::read_to_string(&path).expect("crds/peergroups.yaml");
    let crd: Value = serde_yaml::from_str(&text).expect("the CRD is YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn type_cell(schema: &Value) -> String {
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", v.as_str().expect("string enum")))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    match schema["type"].as_str().expect("every field has a type") {
        "array" => "list".into(),
        other => other.into(),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// Every documented path of an object schema, with what its row must say.
fn fields(schema: &Value, prefix: &str, out: &mut BTreeMap<String, Field>) {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in schema["properties"].as_object().expect("properties") {
        let path = format!("{prefix}{name}");
        let default = if required.contains(&name.as_str()) {
            Expected::Exactly("required".into())
        } else if let Some(d) = prop.get("default").filter(|d| !d.is_object()) {
            Expected::Exactly(literal(d))
        } else {
            Expected::Prose
        };
        if let Some((_, type_)) = OPAQUE.iter().find(|(p, _)| *p == path) {
            let type_ = type_.to_string();
            out.insert(path, Field { type_, default });
        } else if prop["type"] == "object" && prop.get("properties").is_some() {
            fields(prop, &format!("{path}."), out);
        } else {
            let type_ = type_cell(prop);
            if prop["type"] == "array" && prop["items"].get("properties").is_some() {
                fields(&prop["items"], &format!("{path}[]."), out);
            }
            out.insert(path, Field { type_, default });
        }
    }
}

/// The README table: first column `path`, then type, default, meaning.
fn readme_rows() -> BTreeMap<String, (String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&path).expect("README.md");
    let section = text
        .split_once(HEADING)
        .unwrap_or_else(|| panic!("README.md has no {HEADING:?} section"))
        .1;
    let mut rows = BTreeMap::new();
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert!(
            cells.len() == 4,
            "README.md reference row without 4 cells: {line}"
        );
        let field = cells[0]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .unwrap_or_else(|| panic!("README.md reference: field not in backticks: {line}"));
        let previous = rows.insert(field.to_string(), (cells[1].into(), cells[2].into()));
        assert!(previous.is_none(), "README.md lists {field} twice");
    }
    rows
}

#[test]
fn the_readme_reference_matches_the_crd() {
    let mut schema_fields = BTreeMap::new();
    fields(&spec_schema(), "", &mut schema_fields);
    let rows = readme_rows();
    assert!(
        schema_fields.len() >= 15,
        "the walk found the spec's fields"
    );

    let missing: Vec<&String> = schema_fields
        .keys()
        .filter(|k| !rows.contains_key(*k))
        .collect();
    let unknown: Vec<&String> = rows
        .keys()
        .filter(|k| !schema_fields.contains_key(*k))
        .collect();
    let mut wrong = Vec::new();
    for (path, field) in &schema_fields {
        let Some((type_, default)) = rows.get(path) else {
            continue;
        };
        if *type_ != field.type_ {
            wrong.push(format!(
                "{path}: type is {:?}, the README says {type_:?}",
                field.type_
            ));
        }
        match &field.default {
            Expected::Exactly(want) if default != want => wrong.push(format!(
                "{path}: default is {want}, the README says {default:?}"
            )),
            Expected::Prose if default.is_empty() || default.starts_with('`') => {
                wrong.push(format!(
                    "{path}: no default in the CRD; say in words what happens when it is unset \
                 (the README says {default:?})"
                ))
            }
            _ => {}
        }
    }
    assert!(
        missing.is_empty() && unknown.is_empty() && wrong.is_empty(),
        "README.md {HEADING:?} is out of step with the CRD (crds/peergroups.yaml):\n\
         fields missing from the table: {missing:?}\n\
         rows for fields the CRD does not have: {unknown:?}\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_walk_sees_defaults_types_and_list_items() {
    let mut f = BTreeMap::new();
    fields(&spec_schema(), "", &mut f);
    assert_eq!(f["ports.mesh"].default, Expected::Exactly("`10000`".into()));
    assert_eq!(f["tls.enabled"].default, Expected::Exactly("`true`".into()));
    assert_eq!(
        f["resyncTimeout"].default,
        Expected::Exactly("`30s`".into())
    );
    assert_eq!(f["selector"].default, Expected::Exactly("required".into()));
    assert_eq!(f["tables[].policy"].type_, "`replicate` or `ignore`");
    assert_eq!(f["tables"].default, Expected::Prose);
    assert!(!f.contains_key("ports") && !f.contains_key("selector.matchLabels"));
}
