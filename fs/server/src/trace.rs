//! One line per message, like lib9p's chatty9p (`-D`).

use ninep::{Fcall, Msg};

/// Formats a message for the trace: payloads are shown by length only.
pub fn line(msg: &Msg) -> String {
    let body = match &msg.body {
        Fcall::Rread(r) => format!("Rread {{ count: {} }}", r.data.len()),
        Fcall::Twrite(t) => format!(
            "Twrite {{ fid: {}, offset: {}, count: {} }}",
            t.fid,
            t.offset,
            t.data.len()
        ),
        Fcall::Rreaddir(r) => format!("Rreaddir {{ count: {} }}", r.data.len()),
        other => {
            let mut s = format!("{other:?}");
            // Struct-variant Debug repeats the name: "Twalk(Twalk { .. })".
            if let Some(start) = s.find('(') {
                s = s[start + 1..s.len() - 1].to_owned();
            }
            s
        }
    };
    format!("tag {} {body}", msg.tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninep::{Rread, Twalk};

    #[test]
    fn payloads_are_elided() {
        let m = Msg {
            tag: 3,
            body: Rread {
                data: vec![0; 9000],
            }
            .into(),
        };
        assert_eq!(line(&m), "tag 3 Rread { count: 9000 }");
        let m = Msg {
            tag: 1,
            body: Twalk {
                fid: 0,
                newfid: 1,
                wnames: vec!["a".into()],
            }
            .into(),
        };
        assert_eq!(
            line(&m),
            "tag 1 Twalk { fid: 0, newfid: 1, wnames: [\"a\"] }"
        );
    }
}
