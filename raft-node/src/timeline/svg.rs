//! The timeline as a hand-written SVG: a lane per server, a coloured rectangle per span,
//! term numbers in the spans wide enough to hold them, and the demo's actions as dashed
//! vertical lines labelled above the lanes. Hand-written rather than through a plotting
//! library because the picture is rectangles, lines and text placed by hand anyway.

use std::fmt::Write;

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
        ActionKind::Kill => "#cb181d",
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
    // Writing to a String cannot fail; the results are ignored throughout.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">Election timeline, {} to {} UTC</text>"#,
        clock::clock_seconds(timeline.start),
        clock::clock_seconds(timeline.end)
    );
    legend(&mut svg);

    for (index, lane) in timeline.lanes.iter().enumerate() {
        let top = LANES_TOP + index as f64 * (LANE_HEIGHT + LANE_GAP);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">server {}</text>"#,
            LEFT - 8.0,
            top + LANE_HEIGHT / 2.0 + 4.0,
            lane.server
        );

        let mut previous_term = None;
        for piece in &lane.spans {
            let (left, right) = (x(piece.from), x(piece.to));
            let _ = writeln!(
                svg,
                r#"<rect class="span" data-server="{}" data-state="{}" data-term="{}" x="{left:.1}" y="{top}" width="{:.1}" height="{LANE_HEIGHT}" fill="{}"/>"#,
                lane.server,
                state_name(piece.state),
                piece.term,
                (right - left).max(0.5),
                fill(piece.state)
            );

            // The term is written where it changes, or inside any leader span, when
            // the span is wide enough to hold the number.
            let new_term = previous_term != Some(piece.term);
            let leads = piece.state == SpanState::Running(Role::Leader);
            if (new_term || leads) && right - left >= 22.0 {
                let colour = if leads { "white" } else { "#252525" };
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{}" font-size="10" fill="{colour}">t{}</text>"#,
                    left + 3.0,
                    top + LANE_HEIGHT / 2.0 + 4.0,
                    piece.term
                );
            }
            if new_term && previous_term.is_some() {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{left:.1}" y1="{}" x2="{left:.1}" y2="{}" stroke="#252525" stroke-width="1"/>"##,
                    top - 3.0,
                    top
                );
            }
            previous_term = Some(piece.term);
        }

        // A partition is a red bar under the lane while it lasts.
        for &(from, to) in &lane.cut {
            let _ = writeln!(
                svg,
                r##"<rect class="cut" data-server="{}" x="{:.1}" y="{}" width="{:.1}" height="4" fill="#cb181d"/>"##,
                lane.server,
                x(from),
                top + LANE_HEIGHT + 2.0,
                (x(to) - x(from)).max(0.5)
            );
        }
    }

    for (index, marker) in timeline.markers.iter().enumerate() {
        let at = x(marker.at);
        let row = index % LABEL_ROWS;
        let label_y = 66.0 + row as f64 * 16.0;
        let colour = marker_colour(marker.kind);
        let _ = writeln!(
            svg,
            r#"<line class="marker" x1="{at:.1}" y1="{}" x2="{at:.1}" y2="{}" stroke="{colour}" stroke-dasharray="4 3"/>"#,
            label_y + 3.0,
            axis_y - LANE_GAP + 4.0
        );
        let _ = writeln!(
            svg,
            r#"<text class="marker-label" x="{:.1}" y="{label_y}" fill="{colour}" font-size="11">{}</text>"#,
            at + 2.0,
            escape(&marker.label)
        );
    }

    axis(&mut svg, timeline, axis_y, &x);
    svg.push_str("</svg>\n");
    svg
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
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="34" width="14" height="12" fill="{}" stroke="#969696"/><text x="{}" y="44">{name}</text>"##,
            fill(state),
            left + 18.0
        );
        left += 26.0 + 7.0 * name.len() as f64;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="38" width="14" height="4" fill="#cb181d"/><text x="{}" y="44">cut off by a partition</text>"##,
        left + 18.0
    );
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

    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#525252"/>"##,
        WIDTH - RIGHT
    );
    let mut tick = (timeline.start + step - 1).div_euclid(step) * step;
    while tick <= timeline.end {
        let at = x(tick);
        let label = if step_ms < 1000 {
            clock::clock_millis(tick)
        } else {
            clock::clock_seconds(tick)
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{at:.1}" y1="{axis_y}" x2="{at:.1}" y2="{}" stroke="#525252"/><text x="{at:.1}" y="{}" text-anchor="middle" font-size="10">{label}</text>"##,
            axis_y + 5.0,
            axis_y + 18.0
        );
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
