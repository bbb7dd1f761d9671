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
<tr><th>age</th><td class="num" id="age">{age} s</td></tr>
<tr><th>state</th><td class="{stale_class}" id="stale">{stale_text}</td></tr>
<tr><th>keys</th><td class="num" id="keys">{keys}</td></tr>
<tr><th>records</th><td class="num">{records}</td></tr>
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
<tr><th>hit ratio</th><td class="num" id="hit-ratio">{c_ratio}</td></tr>
<tr><th>hits / misses</th><td class="num">{c_hits} / {c_misses}</td></tr>
</table>
<h2>Upstreams</h2>
<table><tr><th>URL</th><th>state</th><th>failures</th><th>last error</th></tr>
{upstreams}</table>
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
