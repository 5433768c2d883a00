//! A strict reader of the OpenMetrics text format (the subset prometheus-client writes), so the
//! test checks the scrape a Prometheus server would parse, not a few substrings.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// Families by name, or the first line that breaks the format.
pub fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut lines = text.split('\n').enumerate().peekable();
    let mut saw_eof = false;
    while let Some((n, line)) = lines.next() {
        let at = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if saw_eof {
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            return Err(at("content after # EOF"));
        }
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text"))?;
            check_name(name).map_err(|e| at(&e))?;
            family(&mut families, name).help = help.to_string();
            current = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without type"))?;
            check_name(name).map_err(|e| at(&e))?;
            if ![
                "counter",
                "gauge",
                "info",
                "histogram",
                "summary",
                "stateset",
                "unknown",
                "gaugehistogram",
            ]
            .contains(&kind)
            {
                return Err(at("unknown type"));
            }
            let f = family(&mut families, name);
            if !f.kind.is_empty() {
                return Err(at("family typed twice"));
            }
            f.kind = kind.to_string();
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at("not a sample, a descriptor or # EOF"));
        }
        let sample = parse_sample(line).map_err(|e| at(&e))?;
        let family_name = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE"))?;
        let family = families
            .get_mut(&family_name)
            .ok_or_else(|| at("no family"))?;
        let suffixes: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "info" => &["_info"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => &[""],
        };
        if !suffixes
            .iter()
            .any(|s| sample.name == format!("{family_name}{s}"))
        {
            return Err(at(&format!(
                "sample does not belong to family {family_name}"
            )));
        }
        if family
            .samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(at("duplicate series"));
        }
        family.samples.push(sample);
    }
    if !saw_eof {
        return Err("no # EOF line".into());
    }
    if let Some((name, _)) = families.iter().find(|(_, f)| f.kind.is_empty()) {
        return Err(format!("family {name} has no TYPE"));
    }
    Ok(families)
}

fn family<'a>(families: &'a mut BTreeMap<String, Family>, name: &str) -> &'a mut Family {
    families.entry(name.to_string()).or_insert_with(|| Family {
        kind: String::new(),
        help: String::new(),
        samples: vec![],
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            match chars.peek() {
                Some(&(i, '}')) => break i,
                Some(_) => {}
                None => return Err("unterminated label set".into()),
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            check_name(&key).map_err(|_| format!("bad label name {key:?}"))?;
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => return Err("bad escape in label value".into()),
                    },
                    Some(c) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.peek() {
                Some(&(_, ',')) => {
                    chars.next();
                }
                Some(&(_, '}')) => {}
                _ => return Err("expected , or } after a label".into()),
            }
        };
        rest = &body[end + 1..];
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<f64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[test]
fn the_reader_rejects_broken_expositions() {
    let good = "# HELP x things\n# TYPE x counter\nx_total{a=\"1\"} 2\n# EOF\n";
    let f = parse(good).unwrap();
    assert_eq!(f["x"].samples[0].labels["a"], "1");
    for bad in [
        "# HELP x things\n# TYPE x counter\nx_total{a=\"1\"} 2\n",
        "# HELP x things\n# TYPE x counter\ny_total 2\n# EOF\n",
        "# HELP x things\n# TYPE x counter\nx_total{a=1} 2\n# EOF\n",
        "# HELP x things\n# TYPE x counter\nx_total{a=\"1\" 2\n# EOF\n",
        "# HELP x things\n# TYPE x counter\nx_total two\n# EOF\n",
        "# HELP x things\n# TYPE x gauge\nx 1\nx 2\n# EOF\n",
        "x 1\n# EOF\n",
        "# HELP x things\n# TYPE x gauge\nx 1\n# EOF\nx 2\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
