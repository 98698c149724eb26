//! `/metrics` in the Prometheus text exposition format, version 0.0.4: the one renderer
//! `serve` and `webhook` both answer with. Each metric is a `# HELP` line, a `# TYPE` line and
//! its samples; a gauge without a value (nothing measured yet) is left out whole.

use std::fmt::Write;

/// The `content-type` of a `/metrics` answer.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A metrics page being written.
#[derive(Debug, Default)]
pub(crate) struct Page(String);

impl Page {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// A counter.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.header(name, "counter", help);
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    /// A counter with one sample per value of `label` (the values are static names, not
    /// escaped).
    pub(crate) fn counter_by(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: &[(&str, u64)],
    ) -> &mut Self {
        self.header(name, "counter", help);
        for (value, n) in samples {
            let _ = writeln!(self.0, "{name}{{{label}=\"{value}\"}} {n}");
        }
        self
    }

    /// A gauge, left out when `value` is `None`.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: Option<i64>) -> &mut Self {
        if let Some(v) = value {
            self.header(name, "gauge", help);
            let _ = writeln!(self.0, "{name} {v}");
        }
        self
    }

    /// The page as a `/metrics` reply.
    pub(crate) fn reply(self) -> super::Reply {
        super::Reply::text(http::StatusCode::OK, self.0).with_content_type(CONTENT_TYPE)
    }

    /// The page's text.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let mut p = Page::default();
        p.counter("a_total", "As.", 2)
            .counter_by("b_total", "Bs by result.", "result", &[("x", 1), ("y", 0)])
            .gauge("c_seconds", "Cs.", Some(-5))
            .gauge("d_seconds", "Never measured.", None);
        assert_eq!(
            p.text(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 2\n\
             # HELP b_total Bs by result.\n# TYPE b_total counter\n\
             b_total{result=\"x\"} 1\nb_total{result=\"y\"} 0\n\
             # HELP c_seconds Cs.\n# TYPE c_seconds gauge\nc_seconds -5\n"
        );
        let r = p.reply();
        assert_eq!(r.content_type, CONTENT_TYPE);
    }
}
