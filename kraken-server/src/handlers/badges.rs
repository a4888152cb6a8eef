//! Branch badges and build-monitor feeds, public as in the original:
//! `GET /branch-badge/{id}` (also under `/bk`) answers an SVG badge of the
//! branch's latest CI flow (`passing`, `failing`, `running`, `no flows`),
//! `/tests` its tests passed of total, `/issues` its issues, and `/cctray`
//! the CCTray XML that build monitors (CCMenu, CCTray, Nevergreen) read.
//!
//! The original redirected to img.shields.io; these badges are drawn here,
//! so they work on a network without the internet and leak nothing to a
//! third party.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kraken_core::Error;
use kraken_core::model::{Flow, Outcome};

use crate::extract::{AppError, AppState, P, R};

/// A badge's colours (shields.io's).
const GREEN: &str = "#4c1";
const RED: &str = "#e05d44";
const ORANGE: &str = "#fe7d37";
const BLUE: &str = "#007ec6";
const GREY: &str = "#9f9f9f";

/// The width of a text in the badge's 11 px Verdana, near enough.
fn text_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '|' | '!' | '\'' | ' ' => 4,
            'm' | 'w' | 'M' | 'W' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum::<usize>()
        + 10
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A flat two-part badge: `label | message` with the message's colour.
pub fn badge_svg(label: &str, message: &str, color: &str) -> String {
    let (lw, mw) = (text_width(label), text_width(message));
    let w = lw + mw;
    let (label, message) = (escape(label), escape(message));
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}">"##,
            r##"<title>{label}: {message}</title>"##,
            r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r##"<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g>"##,
            r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">"##,
            r##"<text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##
        ),
        w = w,
        lw = lw,
        mw = mw,
        color = color,
        label = label,
        message = message,
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

/// The latest CI flows of a branch, newest first (the badge reads the
/// latest decided one, the feed also whether one runs).
async fn latest_flows(st: &AppState, branch_id: i64) -> R<(String, Vec<Flow>)> {
    let k = st.core.local_admin();
    let branch = k.get_branch(branch_id).await?;
    let flows = k
        .get_flows(branch_id, "ci", None, Some(20), None)
        .await?
        .items;
    Ok((format!("{}/{}", branch.project_name, branch.name), flows))
}

fn svg(body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            // Badges change with every flow.
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        body,
    )
        .into_response()
}

/// `GET /branch-badge/{id}`: the latest CI flow's verdict.
pub async fn branch_badge(State(st): State<AppState>, P(id): P<i64>) -> R<Response> {
    let (_, flows) = latest_flows(&st, id).await?;
    let (msg, color) = match flows.iter().map(Flow::outcome).find(Outcome::is_final) {
        Some(Outcome::Passed) => ("passing", GREEN),
        Some(Outcome::Failed(_)) => ("failing", RED),
        Some(_) => ("cancelled", GREY),
        None if flows.is_empty() => ("no flows", GREY),
        None => ("running", BLUE),
    };
    Ok(svg(badge_svg("kraken", msg, color)))
}

/// `GET /branch-badge/{id}/{what}`: `tests`, `issues` or `cctray`.
pub async fn branch_badge_what(
    State(st): State<AppState>,
    headers: HeaderMap,
    P((id, what)): P<(i64, String)>,
) -> R<Response> {
    let (name, flows) = latest_flows(&st, id).await?;
    let decided = flows.iter().find(|f| f.outcome().is_final());
    match what.as_str() {
        "tests" => {
            let (passed, total) = decided
                .map(|f| {
                    f.runs
                        .iter()
                        .fold((0, 0), |(p, t), r| (p + r.tests_passed, t + r.tests_total))
                })
                .unwrap_or((0, 0));
            let (msg, color) = if total == 0 {
                ("no tests".to_string(), GREY)
            } else if passed == total {
                (format!("{passed}/{total} passed"), GREEN)
            } else {
                (format!("{passed}/{total} passed"), RED)
            };
            Ok(svg(badge_svg("tests", &msg, color)))
        }
        "issues" => {
            let (total, new) = decided
                .map(|f| {
                    f.runs
                        .iter()
                        .fold((0, 0), |(t, n), r| (t + r.issues_total, n + r.issues_new))
                })
                .unwrap_or((0, 0));
            let color = if total == 0 {
                GREEN
            } else if new > 0 {
                ORANGE
            } else {
                BLUE
            };
            let msg = if new > 0 {
                format!("{total} ({new} new)")
            } else {
                total.to_string()
            };
            Ok(svg(badge_svg("issues", &msg, color)))
        }
        "cctray" => {
            let building = flows.first().is_some_and(|f| !f.outcome().is_final());
            let status = match decided.map(Flow::outcome) {
                Some(Outcome::Passed) => "Success",
                Some(Outcome::Failed(_)) => "Failure",
                _ => "Unknown",
            };
            let base = st
                .core
                .local_admin()
                .get_settings()
                .await
                .ok()
                .and_then(|s| {
                    s.pointer("/general/server_url")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| {
                    let host = headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("localhost");
                    format!("http://{host}")
                });
            let (label, time) = decided
                .map(|f| (f.label.clone(), f.finished.unwrap_or(f.created).to_string()))
                .unwrap_or_default();
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Projects>\n  <Project name=\"{}\" activity=\"{}\" lastBuildStatus=\"{status}\" lastBuildLabel=\"{}\" lastBuildTime=\"{}\" webUrl=\"{}\"/>\n</Projects>\n",
                escape(&name),
                if building { "Building" } else { "Sleeping" },
                escape(&label),
                escape(&time),
                escape(&format!("{}/branches/{id}", base.trim_end_matches('/'))),
            );
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
                xml,
            )
                .into_response())
        }
        other => Err(AppError(Error::not_found(format!(
            "no badge '{other}': use tests, issues or cctray (or none for the flow's verdict)"
        )))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn badges_are_svg_with_escaped_text() {
        let s = super::badge_svg("tests", "3/4 <passed>", super::RED);
        assert!(s.starts_with("<svg"));
        assert!(s.contains("3/4 &lt;passed&gt;"));
        assert!(s.contains(super::RED));
    }
}
