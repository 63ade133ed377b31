//! A host's event log as exported: XML (`wevtutil qe Microsoft-Windows-Hyper-V-VMMS-Admin
//! /f:xml`, which writes `<Event>` elements one after another with no root; Event
//! Viewer's "Save as XML" and `Get-WinEvent`'s `ToXml()` wrap them in `<Events>`) or the
//! `.evtx` file itself, whose records render to the same `<Event>` XML. Each record is
//! read by the event schema (http://schemas.microsoft.com/win/2004/08/events/event):
//! `System/Provider@Name`, `System/EventID`, `System/Level`, `System/Computer`, and the
//! virtual machine's name where the record carries one (`VmName`, as the Hyper-V
//! providers write it in `UserData`, or an `EventData/Data` named so).

use roxmltree::{Document, Node};

use super::input::{decode_text, At, BadInput};

/// One event record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    pub provider: String,
    pub id: u32,
    /// 1 critical, 2 error, 3 warning, 4 information (0 or absent: not given).
    pub level: Option<u8>,
    pub computer: String,
    pub channel: String,
    pub record_id: Option<u64>,
    pub vm: Option<String>,
    /// Where it is in its file: a line of an XML export, a record of an `.evtx`.
    pub at: At,
}

/// Every record of one event log file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    pub file: String,
    pub events: Vec<LoggedEvent>,
}

/// The first bytes of every `.evtx` file (its file header's signature).
const EVTX_MAGIC: &[u8] = b"ElfFile\0";

/// Reads an event log file of either kind: an `.evtx` by its signature, XML otherwise.
pub fn read_event_log(bytes: &[u8], file: &str) -> Result<EventLog, BadInput> {
    let events = if bytes.starts_with(EVTX_MAGIC) {
        read_evtx(bytes, file)?
    } else if file.to_ascii_lowercase().ends_with(".evtx") {
        return Err(BadInput::new(
            file,
            At::File,
            None,
            "not an .evtx file (its first bytes are not the `ElfFile` signature)",
        ));
    } else {
        read_xml(&decode_text(bytes, file)?, file)?
    };
    Ok(EventLog {
        file: file.to_string(),
        events,
    })
}

/// The records of an XML export: `<Event>` elements, bare or inside `<Events>`.
pub fn read_xml(text: &str, file: &str) -> Result<Vec<LoggedEvent>, BadInput> {
    // A synthetic root takes bare elements one after another; it goes on line 1, before
    // the text, so every line number stays the file's. An XML declaration may only open a
    // document, so it is blanked out (same length, same positions).
    let body = blank_declaration(text);
    if body.trim().is_empty() {
        return Err(BadInput::new(
            file,
            At::File,
            None,
            "no event records: the file is empty",
        ));
    }
    let wrapped = format!("<exported>{body}</exported>");
    let doc = Document::parse(&wrapped).map_err(|e| {
        BadInput::new(
            file,
            At::Line(u64::from(e.pos().row)),
            None,
            format!("not well-formed XML: {e}"),
        )
    })?;
    let line = |n: Node| At::Line(u64::from(doc.text_pos_at(n.range().start).row));
    let mut events = Vec::new();
    for top in doc.root_element().children().filter(Node::is_element) {
        let records: Vec<Node> = match top.tag_name().name() {
            "Event" => vec![top],
            "Events" => top.children().filter(Node::is_element).collect(),
            other => {
                return Err(BadInput::new(
                    file,
                    line(top),
                    None,
                    format!("<{other}> is neither an <Event> nor an <Events> element"),
                ))
            }
        };
        for node in records {
            if node.tag_name().name() != "Event" {
                return Err(BadInput::new(
                    file,
                    line(node),
                    None,
                    format!(
                        "<{}> inside <Events> is not an <Event>",
                        node.tag_name().name()
                    ),
                ));
            }
            events.push(event(node, file, &line)?);
        }
    }
    if events.is_empty() {
        return Err(BadInput::new(file, At::File, None, "no <Event> element"));
    }
    Ok(events)
}

/// Replaces a leading `<?xml …?>` by as many spaces (newlines kept).
fn blank_declaration(text: &str) -> String {
    let start = text.len() - text.trim_start().len();
    if !text[start..].starts_with("<?xml") {
        return text.to_string();
    }
    let Some(end) = text[start..].find("?>").map(|e| start + e + 2) else {
        return text.to_string(); // the parser names the unclosed declaration
    };
    let blank: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    format!("{}{blank}{}", &text[..start], &text[end..])
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// One `<Event>` element read by the schema's fields; `place` says where a node is (its
/// line in an export, its record in an `.evtx`).
fn event(node: Node, file: &str, place: &dyn Fn(Node) -> At) -> Result<LoggedEvent, BadInput> {
    let at = place(node);
    let bad =
        |n: Node, field: &str, message: String| BadInput::new(file, place(n), Some(field), message);
    let system = child(node, "System")
        .ok_or_else(|| bad(node, "System", "the <Event> has no <System>".into()))?;
    let provider = child(system, "Provider")
        .and_then(|p| p.attribute("Name"))
        .ok_or_else(|| bad(system, "System/Provider@Name", "missing".into()))?
        .to_string();
    let id_node =
        child(system, "EventID").ok_or_else(|| bad(system, "System/EventID", "missing".into()))?;
    let id_text = id_node.text().unwrap_or("").trim();
    let id = id_text
        .parse::<u32>()
        .ok()
        .filter(|&id| id <= 0xFFFF)
        .ok_or_else(|| {
            bad(
                id_node,
                "System/EventID",
                format!("`{id_text}` is not an event id (0–65535)"),
            )
        })?;
    let level = match child(system, "Level") {
        None => None,
        Some(n) => {
            let t = n.text().unwrap_or("").trim();
            Some(
                t.parse::<u8>()
                    .map_err(|_| bad(n, "System/Level", format!("`{t}` is not a level (0–255)")))?,
            )
        }
    };
    let text_of = |name: &str| {
        child(system, name)
            .and_then(|n| n.text())
            .map_or(String::new(), |t| t.trim().to_string())
    };
    let record_id =
        match child(system, "EventRecordID") {
            None => None,
            Some(n) => {
                let t = n.text().unwrap_or("").trim();
                Some(t.parse::<u64>().map_err(|_| {
                    bad(n, "System/EventRecordID", format!("`{t}` is not a number"))
                })?)
            }
        };
    Ok(LoggedEvent {
        provider,
        id,
        level,
        computer: text_of("Computer"),
        channel: text_of("Channel"),
        record_id,
        vm: vm_name(node),
        at,
    })
}

/// The VM a record is about: a `VmName` element anywhere in its data, or an
/// `EventData/Data Name="VmName"`.
fn vm_name(event: Node) -> Option<String> {
    event
        .descendants()
        .filter(Node::is_element)
        .find_map(|n| {
            let named = n.tag_name().name() == "VmName"
                || (n.tag_name().name() == "Data" && n.attribute("Name") == Some("VmName"));
            named.then(|| n.text().unwrap_or("").trim().to_string())
        })
        .filter(|s| !s.is_empty())
}

/// The records of an `.evtx` file. A record the parser cannot read is an error naming
/// it: a log read in part could hide the very event a check looks for.
fn read_evtx(bytes: &[u8], file: &str) -> Result<Vec<LoggedEvent>, BadInput> {
    let mut parser = evtx::EvtxParser::from_buffer(bytes.to_vec()).map_err(|e| {
        BadInput::new(
            file,
            At::File,
            None,
            format!("not a readable .evtx file: {e}"),
        )
    })?;
    let mut events = Vec::new();
    for (n, record) in parser.records().enumerate() {
        let record = record.map_err(|e| {
            BadInput::new(
                file,
                At::Record(n as u64 + 1),
                None,
                format!(
                    "the record after {} read ones cannot be read: {e}",
                    events.len()
                ),
            )
        })?;
        let at = At::Record(record.event_record_id);
        let doc = Document::parse(&record.data).map_err(|e| {
            BadInput::new(
                file,
                at.clone(),
                None,
                format!("renders to XML that does not parse: {e}"),
            )
        })?;
        events.push(event(doc.root_element(), file, &|_| at.clone())?);
    }
    if events.is_empty() {
        return Err(BadInput::new(file, At::File, None, "no event records"));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Hyper-V-VMMS"/><EventID>10150</EventID><Level>2</Level><EventRecordID>7</EventRecordID><Channel>Microsoft-Windows-Hyper-V-VMMS-Admin</Channel><Computer>hv1</Computer></System><UserData><VmlEventLog xmlns="http://www.microsoft.com/Windows/Virtualization/Events"><VmName>vm1</VmName></VmlEventLog></UserData></Event>
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Hyper-V-VMMS"/><EventID Qualifiers="0">10107</EventID><Computer>hv1</Computer></System></Event>
"#;

    #[test]
    fn bare_events_as_wevtutil_writes_them_are_read_with_their_lines() {
        let events = read_xml(TWO, "e.xml").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, 10150);
        assert_eq!(events[0].level, Some(2));
        assert_eq!(events[0].vm.as_deref(), Some("vm1"));
        assert_eq!(events[0].record_id, Some(7));
        assert_eq!(events[0].at, At::Line(2));
        assert_eq!(events[1].id, 10107);
        assert_eq!(events[1].vm, None);
        assert_eq!(events[1].at, At::Line(3));
    }

    #[test]
    fn an_events_root_is_read_too() {
        let text = format!("<Events>\n{}</Events>", TWO.split_once('\n').unwrap().1);
        let events = read_xml(&text, "e.xml").unwrap();
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [10150, 10107]
        );
        assert_eq!(events[1].at, At::Line(3));
    }

    #[test]
    fn malformed_exports_name_file_line_and_field() {
        let bad_id = TWO.replace("<EventID>10150<", "<EventID>1o150<");
        let e = read_xml(&bad_id, "e.xml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "e.xml:2: field System/EventID: `1o150` is not an event id (0–65535)"
        );
        let cut = &TWO[..TWO.len() - 20];
        let e = read_xml(cut, "e.xml").unwrap_err();
        assert_eq!(e.at, At::Line(3), "{e}");
        assert!(e.message.starts_with("not well-formed XML"), "{e}");
        let e = read_xml("<Event><Foo/></Event>", "e.xml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "e.xml:1: field System: the <Event> has no <System>"
        );
        let e = read_xml("\n\n<Record/>", "e.xml").unwrap_err();
        assert_eq!(e.at, At::Line(3));
        let e = read_event_log(b"MZ\x90\0", "log.evtx").unwrap_err();
        assert!(
            e.to_string().starts_with("log.evtx: not an .evtx file"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_evtx_is_refused_naming_the_file() {
        let mut bytes = b"ElfFile\0".to_vec();
        bytes.resize(4096, 0);
        let e = read_event_log(&bytes, "bad.evtx").unwrap_err();
        assert_eq!(e.file, "bad.evtx");
    }
}
