//! `repute.Engine`: the live view (a base snapshot and delta layers, or an update state
//! directory) over `repute::Engine`, with the lookups of `Snapshot`, `reload`, `status` and
//! `pin`.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use repute::url::Expressions;
use repute::{Found, Query, View};

use crate::{hit_dict, parse_item, to_py, Item, ReputeError};

enum Inner {
    /// The engine: every call loads its current view.
    Live(Arc<repute::Engine>),
    /// One view, pinned by `Engine.pin()`.
    Pinned(Arc<View>),
}

/// A live engine: a base snapshot and delta layers over it, swapped atomically by
/// ``reload()`` while lookups run.
///
/// ``Engine(base, deltas=())`` maps a base snapshot file and delta files over it (oldest
/// first), verifying each. ``Engine.open_state_dir(path)`` opens the set in force in an
/// update state directory (what ``repute update --state DIR`` keeps current), which
/// ``reload()`` then follows. The files follow the snapshot rule: published by rename, never
/// rewritten in place.
///
/// Lookups answer from the view in force when they start; ``lookup_many`` answers the whole
/// batch from one view. ``pin()`` returns an ``Engine`` fixed on the current view. Every
/// method may be called from many threads at once; ``reload`` and ``lookup_many`` release
/// the GIL.
///
/// >>> engine = repute.Engine.open_state_dir("/var/lib/repute")
/// >>> engine.lookup("44d88612fea8a8f36de82e1278abb02f")
/// >>> engine.reload()
/// False
/// >>> engine.status["sequence"]
#[pyclass(frozen, module = "repute")]
pub struct Engine {
    inner: Inner,
}

impl Engine {
    fn view(&self) -> Arc<View> {
        match &self.inner {
            Inner::Live(engine) => engine.load_full(),
            Inner::Pinned(view) => Arc::clone(view),
        }
    }

    fn live(&self) -> PyResult<&repute::Engine> {
        match &self.inner {
            Inner::Live(engine) => Ok(engine),
            Inner::Pinned(_) => Err(PyValueError::new_err(
                "a pinned view never changes: call this on the engine it was pinned from",
            )),
        }
    }
}

fn with_path(py: Python<'_>, path: &std::path::Path, e: repute::Error) -> PyErr {
    let err = to_py(e);
    let message = format!("{}: {}", path.display(), err.value(py));
    PyErr::from_type(err.get_type(py), message)
}

fn json_to_py<'py>(
    py: Python<'py>,
    json: serde_json::Result<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let json = json.map_err(|e| ReputeError::new_err(format!("status: {e}")))?;
    py.import(pyo3::intern!(py, "json"))?
        .call_method1(pyo3::intern!(py, "loads"), (json,))
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (base, deltas = Vec::new()))]
    fn new(py: Python<'_>, base: PathBuf, deltas: Vec<PathBuf>) -> PyResult<Self> {
        // SAFETY: the documented contract of `Engine(...)`: the files are published by
        // rename and never truncated or rewritten in place while open.
        let engine = py
            .detach(|| unsafe { repute::Engine::open(&base, &deltas) })
            .map_err(|e| with_path(py, &base, e))?;
        Ok(Engine {
            inner: Inner::Live(Arc::new(engine)),
        })
    }

    /// Opens the set in force in an update state directory; ``reload()`` follows it.
    ///
    /// Raises ``StateError`` when the directory has no usable ``current.json``.
    #[staticmethod]
    fn open_state_dir(py: Python<'_>, path: PathBuf) -> PyResult<Engine> {
        // SAFETY: a state directory's files are written only by rename (`repute update`
        // and `StateDir` do nothing else), as `open_state_dir`'s documentation says.
        let engine = py
            .detach(|| unsafe { repute::Engine::open_state_dir(&path) })
            .map_err(|e| with_path(py, &path, e))?;
        Ok(Engine {
            inner: Inner::Live(Arc::new(engine)),
        })
    }

    /// Re-reads the state directory and swaps in its set when it changed; returns whether
    /// it swapped. On failure the engine keeps its view, the failure shows in
    /// ``status["last_update"]``, and the library's error is raised (``StateError``,
    /// ``WrongBaseError``, ``ChecksumError``, ...). ``ValueError`` for an engine not opened
    /// from a state directory, or a pinned view.
    fn reload(&self, py: Python<'_>) -> PyResult<bool> {
        let engine = self.live()?;
        if engine.state_dir().is_none() {
            return Err(PyValueError::new_err(
                "the engine was not opened from a state directory (Engine.open_state_dir)",
            ));
        }
        py.detach(|| engine.reload()).map_err(to_py)
    }

    /// What the engine serves, as a dict: ``sequence``, ``identity``, ``base``, ``deltas``,
    /// ``layers``, ``created``, ``expires``, ``age_seconds``, ``stale``, ``policy``,
    /// ``policy_description``, ``last_update``. A pinned view has ``pinned`` (True),
    /// ``sequence``, ``identity``, ``base``, ``deltas``, ``layers``, ``created``, ``expires``.
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner {
            Inner::Live(engine) => json_to_py(py, serde_json::to_string(&engine.status())),
            Inner::Pinned(view) => {
                let d = PyDict::new(py);
                d.set_item("pinned", true)?;
                d.set_item("sequence", view.sequence())?;
                d.set_item("identity", view.identity())?;
                d.set_item("base", view.layers()[0].identity())?;
                let deltas: Vec<&str> = view.layers()[1..].iter().map(|l| l.identity()).collect();
                d.set_item("deltas", deltas)?;
                d.set_item("layers", view.layers().len())?;
                d.set_item("created", view.metadata().created)?;
                d.set_item("expires", view.metadata().expires)?;
                Ok(d.into_any())
            }
        }
    }

    /// The metadata of the snapshot in force (for deltas, of the snapshot they lead to).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, serde_json::to_string(self.view().metadata()))
    }

    /// Whether this is a pinned view (from ``pin()``).
    #[getter]
    fn pinned(&self) -> bool {
        matches!(self.inner, Inner::Pinned(_))
    }

    /// An ``Engine`` fixed on the view in force now: its lookups never see later reloads.
    /// It keeps that view's files mapped while it lives.
    fn pin(&self) -> Engine {
        Engine {
            inner: Inner::Pinned(self.view()),
        }
    }

    /// Looks up one query through the layers, newest first, as ``Snapshot.lookup`` does.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let view = self.view();
        match parse_item(0, query).map_err(|e| {
            // The single-query message does not need the index.
            let text = e.value(py).to_string();
            PyErr::from_type(
                e.get_type(py),
                text.strip_prefix("query 0: ").unwrap_or(&text).to_string(),
            )
        })? {
            Item::Digest(digest) => match view.lookup_digest(&digest) {
                None => Ok(None),
                Some(r) => Some(hit_dict(
                    py,
                    query,
                    digest.kind().as_str(),
                    &r,
                    &digest.to_hex(),
                ))
                .transpose(),
            },
            Item::Url(_, parsed) => match view.lookup(&parsed).map_err(to_py)? {
                None => Ok(None),
                Some(hit) => Some(hit_dict(
                    py,
                    query,
                    parsed.kind().as_str(),
                    &hit.record,
                    &hit.matched,
                ))
                .transpose(),
            },
        }
    }

    /// Looks up many queries (an iterable of ``str`` or ``bytes`` raw digests, any mix) from
    /// one view, with the GIL released; returns a list of ``None`` or dicts, in order.
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        if queries.is_instance_of::<PyString>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "lookup_many takes an iterable of queries, not one string (use lookup)",
            ));
        }
        let items: Vec<Bound<'py, PyAny>> = queries.try_iter()?.collect::<PyResult<_>>()?;
        let mut digests = Vec::with_capacity(items.len());
        let mut urls = Vec::new();
        let mut plan = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match parse_item(i, item)? {
                Item::Digest(d) => {
                    plan.push((true, digests.len()));
                    digests.push(d);
                }
                Item::Url(_, q) => {
                    plan.push((false, urls.len()));
                    urls.push(q);
                }
            }
        }
        let view = self.view();
        let (found, url_hits) = py.detach(|| {
            let mut found = vec![None::<Found>; digests.len()];
            view.lookup_digests(&digests, &mut found);
            let mut scratch = Expressions::new();
            let url_hits = urls
                .iter()
                .map(|q| match q {
                    Query::Url(u) | Query::Domain(u) => view.lookup_url(u, &mut scratch),
                    Query::Digest(_) => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>();
            (found, url_hits)
        });
        let url_hits = url_hits.map_err(to_py)?;
        let out = PyList::empty(py);
        for (item, &(is_digest, at)) in items.iter().zip(&plan) {
            if is_digest {
                match found[at].and_then(|f| view.record(f)) {
                    None => out.append(py.None())?,
                    Some(r) => {
                        let d = &digests[at];
                        out.append(hit_dict(py, item, d.kind().as_str(), &r, &d.to_hex())?)?
                    }
                }
                continue;
            }
            match &url_hits[at] {
                None => out.append(py.None())?,
                Some(hit) => out.append(hit_dict(
                    py,
                    item,
                    urls[at].kind().as_str(),
                    &hit.record,
                    &hit.matched,
                )?)?,
            }
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let view = self.view();
        format!(
            "repute.Engine(sequence={}, layers={}{})",
            view.sequence(),
            view.layers().len(),
            if self.pinned() { ", pinned" } else { "" }
        )
    }
}
