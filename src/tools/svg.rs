//! An SVG flame graph (inferno, the Rust port of Brendan Gregg's FlameGraph).

use super::collapsed::to_collapsed;
use super::resolve::Resolution;
use super::{ErrorKind, ToolError};
use crate::Profile;

/// Renders `profile` as an SVG flame graph titled `title` (threads are the first level).
pub fn to_svg(profile: &Profile, res: &Resolution, title: &str) -> Result<Vec<u8>, ToolError> {
    collapsed_to_svg(&to_collapsed(profile, res), title, "samples")
}

/// Renders collapsed stacks whose weights count `unit` as an SVG flame graph titled `title`.
pub fn collapsed_to_svg(collapsed: &str, title: &str, unit: &str) -> Result<Vec<u8>, ToolError> {
    if collapsed.is_empty() {
        // inferno refuses an empty graph; a profile without samples still gets a valid SVG.
        let title = super::escape_controls(title)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        return Ok(format!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n\
             <svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\n\
             <text x=\"600\" y=\"24\" text-anchor=\"middle\" font-size=\"17\">{title}</text>\n\
             <text x=\"600\" y=\"48\" text-anchor=\"middle\" font-size=\"12\">no samples</text>\n\
             </svg>\n"
        )
        .into_bytes());
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = super::escape_controls(title).into_owned();
    options.count_name = unit.to_string();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, collapsed.lines(), &mut svg).map_err(|e| {
        ToolError::new(ErrorKind::Output, format!("rendering the flame graph: {e}"))
    })?;
    Ok(svg)
}
