//! The status page: one small HTML document, no scripts, rendered from `/status`.

use serde_json::Value;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => esc(s),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Some(other) => esc(&other.to_string()),
    }
}

/// A duration in words at a glance: `42 s`, `17 min`, `5 h 3 min`, `12 d 4 h`.
fn human_age(seconds: Option<i64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    match s {
        ..=0 => "0 s".into(),
        1..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

fn bytes(v: Option<&Value>) -> String {
    let Some(n) = v.and_then(Value::as_u64) else {
        return "-".into();
    };
    match n {
        ..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// Renders the page from the status document.
pub fn render(status: &Value) -> String {
    let p = |path: &str| show(status.pointer(path));
    let stale = status.pointer("/snapshot/stale") == Some(&Value::Bool(true));
    let state = status
        .pointer("/cloud/state")
        .and_then(Value::as_str)
        .unwrap_or("enabled");
    let mut upstreams = String::new();
    for u in status
        .pointer("/upstreams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ok = u.get("reachable") == Some(&Value::Bool(true));
        upstreams.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>\n",
            show(u.get("url")),
            if ok { "ok" } else { "bad" },
            if ok { "reachable" } else { "unreachable" },
            show(u.get("consecutive_failures")),
            show(u.get("last_error")),
        ));
    }
    if upstreams.is_empty() {
        upstreams.push_str("<tr><td colspan=\"4\">none: this service is authoritative</td></tr>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>repute service</title>
<meta name="viewport" content="width=device-width">
<meta http-equiv="refresh" content="30">
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:56em;color:#222}}
h1{{font-size:1.5em}} h2{{font-size:1.1em;margin-top:1.5em}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd}}
td.num{{text-align:right;font-variant-numeric:tabular-nums}}
.ok{{color:#176b1c}} .bad{{color:#a4161a}} .badge{{display:inline-block;padding:.1em .6em;border-radius:.8em;background:#eef}}
</style></head><body>
<h1>repute service <span class="badge">{mode}</span></h1>
<p>{service}, up {uptime} s. Cloud: <b class="{cloud_class}" id="cloud">{cloud}</b></p>
<h2>Snapshot</h2>
<table>
<tr><th>sequence</th><td class="num" id="sequence">{sequence}</td></tr>
<tr><th>created</th><td>{created}</td></tr>
<tr><th>age</th><td class="num" id="age" title="{age} s">{age_text}</td></tr>
<tr><th>state</th><td class="{stale_class}" id="stale">{stale_text}</td></tr>
<tr><th>keys</th><td class="num" id="keys">{keys}</td></tr>
<tr><th>records</th><td class="num">{records}</td></tr>
<tr><th>layers (base + deltas)</th><td class="num" id="layers">{layers}</td></tr>
<tr><th>last reload</th><td id="last-update">{last_update}</td></tr>
</table>
<h2>Queries answered</h2>
<table>
<tr><th>from the snapshot</th><td class="num" id="q-snapshot">{q_snapshot}</td></tr>
<tr><th>from the cache</th><td class="num" id="q-cache">{q_cache}</td></tr>
<tr><th>by an upstream</th><td class="num" id="q-upstream">{q_upstream}</td></tr>
<tr><th>failed (upstream unavailable)</th><td class="num" id="q-failed">{q_failed}</td></tr>
<tr><th>restricted (not forwarded)</th><td class="num" id="q-restricted">{q_restricted}</td></tr>
<tr><th>total</th><td class="num" id="q-total">{q_total}</td></tr>
</table>
<h2>Cache</h2>
<table>
<tr><th>entries</th><td class="num" id="cache-entries">{c_entries}</td></tr>
<tr><th>size</th><td class="num" id="cache-bytes">{c_bytes}</td></tr>
<tr><th>hit ratio</th><td class="num" id="hit-ratio">{c_ratio}</td></tr>
<tr><th>hits / misses</th><td class="num">{c_hits} / {c_misses}</td></tr>
</table>
<h2>Upstreams</h2>
<table><tr><th>URL</th><th>state</th><th>failures</th><th>last error</th></tr>
{upstreams}</table>
<h2>Service</h2>
<table>
<tr><th>connections open / max</th><td class="num" id="connections">{conn_open} / {conn_max}</td></tr>
<tr><th>connections refused (503)</th><td class="num" id="rejected">{conn_rejected}</td></tr>
<tr><th>update channel mirror</th><td id="mirror">{mirror}</td></tr>
<tr><th>statistics intake</th><td id="statistics">{statistics}</td></tr>
<tr><th>API keys</th><td class="num">{api_keys}</td></tr>
</table>
<p><a href="/status">/status</a> (JSON) &middot; <a href="/metrics">/metrics</a> &middot; <a href="/info">/info</a></p>
</body></html>
"#,
        mode = p("/mode"),
        service = p("/service"),
        uptime = p("/uptime_seconds"),
        cloud_class = if state == "enabled" { "ok" } else { "bad" },
        cloud = p("/cloud/description"),
        sequence = p("/snapshot/sequence"),
        created = p("/snapshot/created_iso"),
        age = p("/snapshot/age_seconds"),
        age_text = human_age(
            status
                .pointer("/snapshot/age_seconds")
                .and_then(Value::as_i64)
        ),
        layers = p("/engine/layers"),
        last_update = match status.pointer("/engine/last_update") {
            Some(u) if !u.is_null() => format!(
                "{} at {}{}",
                if u.get("ok") == Some(&Value::Bool(true)) {
                    "ok"
                } else {
                    "failed"
                },
                u.get("at")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "-".into(), crate::iso8601),
                u.get("error")
                    .and_then(Value::as_str)
                    .map(|e| format!(": {}", esc(e)))
                    .unwrap_or_default()
            ),
            _ => "-".into(),
        },
        c_bytes = bytes(status.pointer("/cache/bytes")),
        conn_open = p("/connections/open"),
        conn_max = p("/connections/max"),
        conn_rejected = p("/connections/rejected"),
        mirror = match status.pointer("/updates_mirror").and_then(Value::as_str) {
            Some(kind) => format!("/v1/updates/ (from a {})", esc(kind)),
            None => "off".into(),
        },
        statistics = if status.pointer("/statistics/intake") == Some(&Value::Bool(true)) {
            let mut s = "collecting".to_string();
            if status.pointer("/statistics/samples") == Some(&Value::Bool(true)) {
                s.push_str(", samples wanted");
            }
            if status.pointer("/statistics/relay") == Some(&Value::Bool(true)) {
                s.push_str(", closed days relayed upstream");
            }
            s
        } else {
            "off".into()
        },
        api_keys = match status.pointer("/api_keys") {
            Some(Value::Number(n)) => n.to_string(),
            _ => "not required".into(),
        },
        stale_class = if stale { "bad" } else { "ok" },
        stale_text = if status.pointer("/snapshot").is_none_or(Value::is_null) {
            "no snapshot"
        } else if stale {
            "stale (past its expiry)"
        } else {
            "fresh"
        },
        keys = p("/snapshot/keys"),
        records = p("/snapshot/records"),
        q_snapshot = p("/queries/snapshot"),
        q_cache = p("/queries/cache"),
        q_upstream = p("/queries/upstream"),
        q_failed = p("/queries/failed"),
        q_restricted = p("/queries/restricted"),
        q_total = p("/queries/total"),
        c_entries = p("/cache/entries"),
        c_ratio = p("/cache/hit_ratio"),
        c_hits = p("/cache/hits"),
        c_misses = p("/cache/misses"),
    )
}
