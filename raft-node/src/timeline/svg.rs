//! The timeline as a hand-written SVG: a lane per server, a coloured rectangle per span,
//! term numbers in the spans wide enough to hold them, and the demo's actions as dashed
//! vertical lines labelled above the lanes. Hand-written rather than through a plotting
//! library because the picture is rectangles, lines and text placed by hand anyway.

use std::fmt::{Display, Write};

use raft::Role;

use super::clock::{self, Micros};
use super::records::ActionKind;
use super::{SpanState, Timeline};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
/// Where the first lane starts: below the title, the legend and three label rows.
const LANES_TOP: f64 = 122.0;
const LANE_HEIGHT: f64 = 30.0;
const LANE_GAP: f64 = 14.0;
/// Rows for marker labels, so that labels of close actions do not overlap.
const LABEL_ROWS: usize = 3;

/// Fill colours, chosen to read apart for most colour-blind viewers as well.
fn fill(state: SpanState) -> &'static str {
    match state {
        SpanState::Running(Role::Follower) => "#c6dbef",
        SpanState::Running(Role::PreCandidate) => "#fdd49e",
        SpanState::Running(Role::Candidate) => "#f16913",
        SpanState::Running(Role::Leader) => "#238b45",
        SpanState::Paused => "#bcbddc",
        SpanState::Down => "#f0f0f0",
    }
}

fn marker_colour(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Kill => CUT_COLOUR,
        ActionKind::Restart | ActionKind::Resume | ActionKind::Start => "#2171b5",
        ActionKind::Pause => "#6a51a3",
        ActionKind::Partition | ActionKind::Slow => "#8c510a",
        ActionKind::Heal => "#01665e",
        ActionKind::Transfer | ActionKind::End => "#525252",
    }
}

/// The SVG text of `timeline`.
pub fn render_svg(timeline: &Timeline) -> String {
    let lanes_height = timeline.lanes.len() as f64 * (LANE_HEIGHT + LANE_GAP);
    let axis_y = LANES_TOP + lanes_height;
    let height = axis_y + 44.0;
    let plot_width = WIDTH - LEFT - RIGHT;
    let span = (timeline.end - timeline.start).max(1) as f64;
    let x = |at: Micros| LEFT + (at - timeline.start) as f64 / span * plot_width;

    let mut svg = String::new();
    let view_box = format!("0 0 {WIDTH} {height}");
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"{view_box}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let background: [(&str, &dyn Display); 3] =
        [("width", &"100%"), ("height", &"100%"), ("fill", &"white")];
    element(&mut svg, "rect", &background, None);
    let title = format!(
        "Election timeline, {} to {} UTC",
        clock::clock_seconds(timeline.start),
        clock::clock_seconds(timeline.end)
    );
    let title_at: [(&str, &dyn Display); 4] = [
        ("x", &LEFT),
        ("y", &22),
        ("font-size", &15),
        ("font-weight", &"bold"),
    ];
    element(&mut svg, "text", &title_at, Some(&title));
    legend(&mut svg);

    for (index, lane) in timeline.lanes.iter().enumerate() {
        let top = LANES_TOP + index as f64 * (LANE_HEIGHT + LANE_GAP);
        let middle = top + LANE_HEIGHT / 2.0 + 4.0;
        let name = format!("server {}", lane.server);
        let name_at: [(&str, &dyn Display); 3] = [
            ("x", &Px(LEFT - 8.0)),
            ("y", &Px(middle)),
            ("text-anchor", &"end"),
        ];
        element(&mut svg, "text", &name_at, Some(&name));

        let mut previous_term = None;
        for piece in &lane.spans {
            let (left, right) = (x(piece.from), x(piece.to));
            let rect: [(&str, &dyn Display); 9] = [
                ("class", &"span"),
                ("data-server", &lane.server),
                ("data-state", &state_name(piece.state)),
                ("data-term", &piece.term),
                ("x", &Px(left)),
                ("y", &Px(top)),
                ("width", &Px((right - left).max(0.5))),
                ("height", &LANE_HEIGHT),
                ("fill", &fill(piece.state)),
            ];
            element(&mut svg, "rect", &rect, None);

            // The term is written where it changes, or inside any leader span, when
            // the span is wide enough to hold the number.
            let new_term = previous_term != Some(piece.term);
            let leads = piece.state == SpanState::Running(Role::Leader);
            if (new_term || leads) && right - left >= 22.0 {
                let colour = if leads { "white" } else { "#252525" };
                let term_at: [(&str, &dyn Display); 4] = [
                    ("x", &Px(left + 3.0)),
                    ("y", &Px(middle)),
                    ("font-size", &10),
                    ("fill", &colour),
                ];
                element(
                    &mut svg,
                    "text",
                    &term_at,
                    Some(&format!("t{}", piece.term)),
                );
            }
            if new_term && previous_term.is_some() {
                line(&mut svg, (left, top - 3.0), (left, top), "#252525", None);
            }
            previous_term = Some(piece.term);
        }

        // A partition is a red bar under the lane while it lasts.
        for &(from, to) in &lane.cut {
            let bar: [(&str, &dyn Display); 7] = [
                ("class", &"cut"),
                ("data-server", &lane.server),
                ("x", &Px(x(from))),
                ("y", &Px(top + LANE_HEIGHT + 2.0)),
                ("width", &Px((x(to) - x(from)).max(0.5))),
                ("height", &4),
                ("fill", &CUT_COLOUR),
            ];
            element(&mut svg, "rect", &bar, None);
        }
    }

    for (index, marker) in timeline.markers.iter().enumerate() {
        let at = x(marker.at);
        let label_y = 66.0 + (index % LABEL_ROWS) as f64 * 16.0;
        let colour = marker_colour(marker.kind);
        let bottom = axis_y - LANE_GAP + 4.0;
        line(
            &mut svg,
            (at, label_y + 3.0),
            (at, bottom),
            colour,
            Some("marker"),
        );
        let label_at: [(&str, &dyn Display); 5] = [
            ("class", &"marker-label"),
            ("x", &Px(at + 2.0)),
            ("y", &Px(label_y)),
            ("fill", &colour),
            ("font-size", &11),
        ];
        element(&mut svg, "text", &label_at, Some(&marker.label));
    }

    axis(&mut svg, timeline, axis_y, &x);
    svg.push_str("</svg>\n");
    svg
}

/// The colour of a partition's bar.
const CUT_COLOUR: &str = "#cb181d";

/// A coordinate, written with one decimal.
struct Px(f64);

impl Display for Px {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// Appends one element on a line of its own: `<name a="v"/>`, or with `text` (escaped)
/// inside. Writing to a String cannot fail, so results are ignored here.
fn element(svg: &mut String, name: &str, attributes: &[(&str, &dyn Display)], text: Option<&str>) {
    let _ = write!(svg, "<{name}");
    for (key, value) in attributes {
        let _ = write!(svg, " {key}=\"{}\"", escape(&value.to_string()));
    }
    match text {
        Some(text) => {
            let _ = writeln!(svg, ">{}</{name}>", escape(text));
        }
        None => svg.push_str("/>\n"),
    }
}

/// Appends a line; dashed when it has a class (the markers).
fn line(svg: &mut String, from: (f64, f64), to: (f64, f64), colour: &str, class: Option<&str>) {
    let mut attributes: Vec<(&str, &dyn Display)> = Vec::new();
    let class_name = class.unwrap_or_default();
    if class.is_some() {
        attributes.push(("class", &class_name));
    }
    let (x1, y1, x2, y2) = (Px(from.0), Px(from.1), Px(to.0), Px(to.1));
    attributes.extend([
        ("x1", &x1 as &dyn Display),
        ("y1", &y1),
        ("x2", &x2),
        ("y2", &y2),
        ("stroke", &colour),
    ]);
    if class.is_some() {
        attributes.push(("stroke-dasharray", &"4 3"));
    }
    element(svg, "line", &attributes, None);
}

fn legend(svg: &mut String) {
    let entries = [
        ("follower", SpanState::Running(Role::Follower)),
        ("pre-candidate", SpanState::Running(Role::PreCandidate)),
        ("candidate", SpanState::Running(Role::Candidate)),
        ("leader", SpanState::Running(Role::Leader)),
        ("paused", SpanState::Paused),
        ("down", SpanState::Down),
    ];
    let mut left = LEFT;
    for (name, state) in entries {
        let swatch: [(&str, &dyn Display); 6] = [
            ("x", &Px(left)),
            ("y", &34),
            ("width", &14),
            ("height", &12),
            ("fill", &fill(state)),
            ("stroke", &"#969696"),
        ];
        element(svg, "rect", &swatch, None);
        let text_at: [(&str, &dyn Display); 2] = [("x", &Px(left + 18.0)), ("y", &44)];
        element(svg, "text", &text_at, Some(name));
        left += 26.0 + 7.0 * name.len() as f64;
    }

    let bar: [(&str, &dyn Display); 5] = [
        ("x", &Px(left)),
        ("y", &38),
        ("width", &14),
        ("height", &4),
        ("fill", &CUT_COLOUR),
    ];
    element(svg, "rect", &bar, None);
    let text_at: [(&str, &dyn Display); 2] = [("x", &Px(left + 18.0)), ("y", &44)];
    element(svg, "text", &text_at, Some("cut off by a partition"));
}

/// Ticks at a round step giving at most ten, labelled with the UTC clock.
fn axis(svg: &mut String, timeline: &Timeline, axis_y: f64, x: &impl Fn(Micros) -> f64) {
    const STEPS_MS: [i64; 12] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    ];
    let length_ms = (timeline.end - timeline.start) / 1000;
    let step_ms = STEPS_MS
        .into_iter()
        .find(|step| length_ms / step <= 10)
        .unwrap_or(600_000);
    let step = step_ms * 1000;

    line(
        svg,
        (LEFT, axis_y),
        (WIDTH - RIGHT, axis_y),
        "#525252",
        None,
    );
    let mut tick = (timeline.start + step - 1).div_euclid(step) * step;
    while tick <= timeline.end {
        let at = x(tick);
        let label = if step_ms < 1000 {
            clock::clock_millis(tick)
        } else {
            clock::clock_seconds(tick)
        };
        line(svg, (at, axis_y), (at, axis_y + 5.0), "#525252", None);
        let label_at: [(&str, &dyn Display); 4] = [
            ("x", &Px(at)),
            ("y", &Px(axis_y + 18.0)),
            ("text-anchor", &"middle"),
            ("font-size", &10),
        ];
        element(svg, "text", &label_at, Some(&label));
        tick += step;
    }
}

fn state_name(state: SpanState) -> &'static str {
    match state {
        SpanState::Running(role) => role.as_str(),
        SpanState::Paused => "paused",
        SpanState::Down => "down",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::records::{Action, Record, Stamped};
    use super::*;

    /// Every span is a rectangle carrying its server, state and term; every action a
    /// labelled line; a partition a cut bar; and the text is well-formed enough that
    /// every opened element is closed.
    #[test]
    fn spans_markers_and_cuts_are_drawn() {
        let action = |at, kind, label: &str, groups: Vec<Vec<u64>>| Stamped {
            at,
            record: Record::Action(Action {
                action: kind,
                servers: vec![1, 2],
                groups,
                label: label.into(),
            }),
        };
        let leader = Stamped {
            at: 1_000_000,
            record: Record::Role {
                node: 2,
                role: Role::Leader,
                term: 3,
                votes: None,
            },
        };
        let timeline = Timeline::build(vec![
            action(0, ActionKind::Start, "start", vec![]),
            leader,
            action(
                2_000_000,
                ActionKind::Partition,
                "partition 1 | 2",
                vec![vec![1], vec![2]],
            ),
            action(3_000_000, ActionKind::Heal, "heal <all>", vec![]),
            action(4_000_000, ActionKind::End, "end", vec![]),
        ]);

        let svg = render_svg(&timeline);
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains(r#"data-server="2" data-state="leader" data-term="3""#));
        assert_eq!(svg.matches(r#"class="marker""#).count(), 3);
        assert!(svg.contains(">partition 1 | 2</text>"));
        assert!(svg.contains(">heal &lt;all&gt;</text>"));
        assert_eq!(svg.matches(r#"class="cut""#).count(), 2);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }
}
