//! The operations of `src/imap` that change the mailbox, against a real Dovecot (the throwaway
//! server of `tests/common/dovecot.rs`) and against small scripted servers
//! (`tests/common/fakeimap.rs`) for what Dovecot cannot show (Gmail labels, hostile answers, a
//! connection that breaks mid-operation).
//!
//! Every action is checked from the outside too: a second, independent client (`dc.imap()`)
//! snapshots the folder's message count and every message's flags before and after, and the
//! test asserts that only the requested UIDs changed, and only as asked.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::dovecot::{self, Dovecot, Mailbox, Seed};
use common::fakeimap::{FakeImap, Plan, Step};
use mailmoat::config::{Account, Config, Limits};
use mailmoat::imap::{CancelToken, Flag, ImapClient, ImapError, MailboxName, OpCtx, SearchQuery};

fn no_progress(_: u64, _: Option<u64>) {}

fn client_with(dc: &Dovecot, adjust: impl FnOnce(&mut Account, &mut Limits)) -> ImapClient {
    let cfg = Config::parse(&dc.mailmoat_config("full"), Path::new("/test/config.toml")).expect("harness config parses");
    let (mut a, mut l) = (cfg.accounts["test"].clone(), cfg.limits);
    adjust(&mut a, &mut l);
    ImapClient::new(Arc::new(a), Arc::new(l))
}

fn client(dc: &Dovecot) -> ImapClient {
    client_with(dc, |_, _| {})
}

fn folder(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn flags(v: &[&str]) -> Vec<Flag> {
    v.iter().map(|f| Flag::parse(f).unwrap()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A folder as an independent client sees it: message count and flags per UID.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    exists: usize,
    flags: BTreeMap<u32, Vec<String>>,
}

/// EXAMINE plus `UID FETCH 1:* (UID FLAGS)` over the harness's own client (openssl s_client).
fn snapshot(dc: &Dovecot, name: &str) -> Snapshot {
    let mut c = dc.imap();
    let lines = c.ok(&format!("EXAMINE {}", dovecot::imap_quote(&dovecot::mutf7(name))));
    let exists = lines
        .iter()
        .find_map(|l| l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")).and_then(|n| n.parse().ok()))
        .expect("EXISTS in EXAMINE");
    let mut flags = BTreeMap::new();
    if exists > 0 {
        for l in c.ok("UID FETCH 1:* (UID FLAGS)") {
            if !l.starts_with("* ") || !l.contains(" FETCH (") {
                continue;
            }
            let uid = l.split("UID ").nth(1).and_then(|r| r.split([' ', ')']).next()).and_then(|n| n.parse().ok()).expect("UID");
            let list = l.split("FLAGS (").nth(1).and_then(|r| r.split(')').next()).unwrap_or("");
            // \Recent is per session: the snapshot client sees it, ours never sets it.
            let f: Vec<String> = list.split_whitespace().filter(|f| *f != "\\Recent").map(str::to_string).collect();
            flags.insert(uid, sorted(f));
        }
    }
    assert_eq!(flags.len(), exists, "{lines:?}");
    Snapshot { exists, flags }
}

/// Asserts that `after` differs from `before` only in the UIDs of `changed` (with exactly the
/// given flags; `None` = the message is gone) and in `added` new UIDs.
fn assert_only(before: &Snapshot, after: &Snapshot, changed: &[(u32, Option<&[&str]>)], added: usize) {
    let mut want = before.flags.clone();
    for (uid, f) in changed {
        match f {
            Some(f) => {
                want.insert(*uid, sorted(f.iter().map(|s| s.to_string()).collect()));
            }
            None => {
                want.remove(uid);
            }
        }
    }
    let gone = changed.iter().filter(|(_, f)| f.is_none()).count();
    assert_eq!(after.exists, before.exists + added - gone, "message count");
    let old: BTreeMap<u32, Vec<String>> =
        after.flags.iter().filter(|(u, _)| before.flags.contains_key(u)).map(|(u, f)| (*u, f.clone())).collect();
    assert_eq!(old, want, "flags of existing messages");
    assert_eq!(after.flags.len() - old.len(), added, "new messages");
}

fn uidvalidity(imap: &ImapClient, ctx: &OpCtx<'_>, name: &str) -> u32 {
    imap.fetch_summaries(ctx, &folder(name), None, &[]).unwrap().0
}

#[test]
fn flags_and_keywords_touch_only_the_given_uids() {
    let dc = Dovecot::start(&Seed::Standard);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let v = uidvalidity(&imap, &ctx, "INBOX");
    let std_inbox = dovecot::standard_inbox();
    let unread: Vec<u32> = std_inbox.iter().enumerate().filter(|(_, m)| !m.seen()).map(|(i, _)| i as u32 + 1).collect();
    let (u1, u2) = (1u32, 3u32); // both \Seen in the seed
    assert!(std_inbox[0].seen() && std_inbox[2].seen());

    // Add \Flagged and a keyword, remove \Seen, on two messages; a missing UID is just absent.
    let before = snapshot(&dc, "INBOX");
    let got = imap.store_flags(&ctx, &inbox, v, &[u2, 9999, u1], &flags(&["\\Flagged", "$Todo"]), &flags(&["\\Seen"])).unwrap();
    assert_eq!(got.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [u2, u1], "caller's order, missing UID absent");
    for (_, f) in &got {
        assert_eq!(sorted(f.clone()), ["$Todo", "\\Flagged"]);
    }
    let after = snapshot(&dc, "INBOX");
    assert_only(&before, &after, &[(u1, Some(&["\\Flagged", "$Todo"])), (u2, Some(&["\\Flagged", "$Todo"]))], 0);

    // Removing what was added restores the state exactly.
    let got = imap.store_flags(&ctx, &inbox, v, &[u1, u2], &flags(&["\\Seen"]), &flags(&["\\Flagged", "$todo"])).unwrap();
    assert_eq!(got, [(u1, vec!["\\Seen".to_string()]), (u2, vec!["\\Seen".to_string()])]);
    assert_eq!(snapshot(&dc, "INBOX"), before);

    // Only reading back: no flags given.
    let got = imap.store_flags(&ctx, &inbox, v, &[dovecot::FLAGGED_SEQ as u32], &[], &[]).unwrap();
    assert!(got[0].1.contains(&"\\Flagged".to_string()), "{got:?}");

    // A stale UIDVALIDITY changes nothing.
    let e = imap.store_flags(&ctx, &inbox, v + 1, &[u1], &flags(&["\\Flagged"]), &[]).unwrap_err();
    assert_eq!(e.code(), "uidvalidity_changed", "{e}");
    let e = imap.store_flags(&ctx, &folder("No such"), v, &[u1], &flags(&["\\Flagged"]), &[]).unwrap_err();
    assert_eq!(e.to_string(), "folder \"No such\" not found");
    assert_eq!(snapshot(&dc, "INBOX"), before);

    // Labels on a server without X-GM-EXT-1 are keywords.
    let (how, got) = imap.store_labels(&ctx, &inbox, v, &[u1], &["Work".into(), "$Later".into()], &[]).unwrap();
    assert_eq!(how, "keywords");
    assert_eq!(got.len(), 1);
    assert_eq!(sorted(got[0].1.clone()), ["$Later", "Work"], "system flags are not labels");
    assert_only(&before, &snapshot(&dc, "INBOX"), &[(u1, Some(&["\\Seen", "Work", "$Later"]))], 0);
    let (_, got) = imap.store_labels(&ctx, &inbox, v, &[u1], &[], &["work".into(), "$Later".into()]).unwrap();
    assert_eq!(got, [(u1, vec![])]);
    assert_eq!(snapshot(&dc, "INBOX"), before);
    let e = imap.store_labels(&ctx, &inbox, v, &[u1], &["\\Seen".into()], &[]).unwrap_err();
    assert_eq!(e.to_string(), "invalid labels: \\Seen is a system flag, not a label; this server has no labels, only keywords");
    let e = imap.store_labels(&ctx, &inbox, v, &[u1], &["two words".into()], &[]).unwrap_err();
    assert_eq!(e.code(), "invalid_argument", "{e}");

    // The write sessions went back to the pool deselected: a read afterwards does not set \Seen.
    let uid = unread[0];
    imap.store_flags(&ctx, &inbox, v, &[u1], &flags(&["\\Answered"]), &[]).unwrap();
    let m = imap.fetch_message(&ctx, &inbox, v, uid).unwrap();
    assert_eq!(m.raw, std_inbox[uid as usize - 1].raw);
    let mut raw = dc.imap();
    raw.ok("EXAMINE INBOX");
    let line = raw.ok(&format!("UID FETCH {uid} FLAGS")).join("\n");
    assert!(!line.contains("\\Seen"), "{line}");
    imap.store_flags(&ctx, &inbox, v, &[u1], &[], &flags(&["\\Answered"])).unwrap();
    assert_eq!(snapshot(&dc, "INBOX"), before);

    let s = imap.stats();
    assert_eq!((s.connects, s.discarded), (1, 0), "{s:?}");
}

#[test]
fn move_copy_and_expunge_exactly_those_uids() {
    let dc = Dovecot::start(&Seed::Standard);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let v = uidvalidity(&imap, &ctx, "INBOX");
    let archive_v = uidvalidity(&imap, &ctx, dovecot::ARCHIVE);
    let std_inbox = dovecot::standard_inbox();

    // A message the user marked \Deleted elsewhere: no operation of ours may expunge it.
    let pending = 20u32;
    {
        let mut c = dc.imap();
        c.ok("SELECT INBOX");
        c.ok(&format!("UID STORE {pending} +FLAGS.SILENT (\\Deleted)"));
    }

    // Copy: the source is untouched, the copies get new UIDs, reported by COPYUID.
    let (inbox0, arch0) = (snapshot(&dc, "INBOX"), snapshot(&dc, dovecot::ARCHIVE));
    let r = imap.copy_messages(&ctx, &inbox, v, &[2, 1, 9999], &folder(dovecot::ARCHIVE)).unwrap();
    let next = dovecot::ARCHIVE_COUNT as u32 + 1;
    assert_eq!((r.method, r.mapping.clone(), r.dest_uidvalidity), ("copy", vec![(1, next), (2, next + 1)], Some(archive_v)));
    assert_eq!(snapshot(&dc, "INBOX"), inbox0);
    let arch1 = snapshot(&dc, dovecot::ARCHIVE);
    assert_only(&arch0, &arch1, &[], 2);
    let copied = imap.fetch_message(&ctx, &folder(dovecot::ARCHIVE), archive_v, next + 1).unwrap();
    assert_eq!(copied.raw, std_inbox[1].raw);

    // Move: the moved messages leave, nothing else does (the \Deleted one stays).
    let entw = folder(dovecot::ENTWUERFE);
    let entw_v = uidvalidity(&imap, &ctx, dovecot::ENTWUERFE);
    let entw0 = snapshot(&dc, dovecot::ENTWUERFE);
    let r = imap.move_messages(&ctx, &inbox, v, &[4, 3], &entw).unwrap();
    let n = dovecot::ENTWUERFE_COUNT as u32;
    assert_eq!((r.method, r.mapping.clone(), r.dest_uidvalidity), ("move", vec![(3, n + 1), (4, n + 2)], Some(entw_v)));
    let inbox1 = snapshot(&dc, "INBOX");
    assert_only(&inbox0, &inbox1, &[(3, None), (4, None)], 0);
    assert_only(&entw0, &snapshot(&dc, dovecot::ENTWUERFE), &[], 2);
    assert_eq!(imap.fetch_message(&ctx, &entw, entw_v, n + 2).unwrap().raw, std_inbox[3].raw);
    assert!(inbox1.flags[&pending].contains(&"\\Deleted".to_string()));

    // Refusals change nothing.
    let e = imap.move_messages(&ctx, &inbox, v, &[5], &folder("No such")).unwrap_err();
    assert_eq!(e.to_string(), "folder \"No such\" not found");
    let e = imap.move_messages(&ctx, &inbox, v + 1, &[5], &entw).unwrap_err();
    assert_eq!(e.code(), "uidvalidity_changed");
    let e = imap.move_messages(&ctx, &inbox, v, &[5], &folder("inbox")).unwrap_err();
    assert_eq!(e.to_string(), "invalid to_folder: is the folder the messages are in");
    let e = imap.copy_messages(&ctx, &entw, entw_v, &[1], &entw).unwrap_err();
    assert_eq!(e.to_string(), "invalid to_folder: is the folder the messages are in");
    let e = imap.copy_messages(&ctx, &inbox, v, &[5], &folder("No such")).unwrap_err();
    assert_eq!(e.code(), "folder_not_found");
    let e = imap.expunge_messages(&ctx, &inbox, v + 1, &[5]).unwrap_err();
    assert_eq!(e.code(), "uidvalidity_changed");
    assert_eq!(snapshot(&dc, "INBOX"), inbox1);

    // Moving UIDs that no longer exist is not an error: nothing moves, nothing is mapped.
    let r = imap.move_messages(&ctx, &inbox, v, &[3, 4], &entw).unwrap();
    assert_eq!((r.method, r.mapping.len()), ("move", 0));
    assert_eq!(snapshot(&dc, "INBOX"), inbox1);

    // Expunge: exactly the existing requested UIDs; the user's \Deleted message survives.
    let gone = imap.expunge_messages(&ctx, &inbox, v, &[7, 3, 9999, 6]).unwrap();
    assert_eq!(gone, [6, 7]);
    let inbox2 = snapshot(&dc, "INBOX");
    assert_only(&inbox1, &inbox2, &[(6, None), (7, None)], 0);
    assert!(inbox2.flags.contains_key(&pending));
    assert_eq!(imap.expunge_messages(&ctx, &inbox, v, &[6]).unwrap(), Vec::<u32>::new());

    let s = imap.stats();
    assert_eq!((s.connects, s.discarded), (1, 0), "{s:?}");
}

/// Dovecot's default capabilities without MOVE.
const CAPS_NO_MOVE: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES \
    THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED \
    I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY LITERAL+ SPECIAL-USE\n";

fn small_seed() -> Seed {
    let mut inbox = Mailbox::new("INBOX");
    for i in 1..=6 {
        inbox.push(
            dovecot::crlf(format!("From: a@example.test\nSubject: m{i}\nMessage-ID: <m{i}@x>\n\nbody {i}\n")),
            if i % 2 == 0 { "S" } else { "" },
        );
    }
    let mut other = Mailbox::new("Other");
    other.push(dovecot::crlf("Subject: o\n\nx\n"), "");
    let mut trash = Mailbox::new("Trash");
    trash.push(dovecot::crlf("Subject: t\n\nx\n"), "S");
    Seed::Custom(vec![inbox, other, trash])
}

#[test]
fn move_without_move_capability_is_copy_and_uid_expunge() {
    let dc = Dovecot::start_with(&small_seed(), CAPS_NO_MOVE);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let v = uidvalidity(&imap, &ctx, "INBOX");
    {
        let mut c = dc.imap();
        c.ok("SELECT INBOX");
        c.ok("UID STORE 5 +FLAGS.SILENT (\\Deleted)");
    }
    let (in0, other0) = (snapshot(&dc, "INBOX"), snapshot(&dc, "Other"));
    // 99 is at or above UIDNEXT: it must not be in the COPY, STORE or EXPUNGE.
    let r = imap.move_messages(&ctx, &inbox, v, &[2, 3, 99], &folder("Other")).unwrap();
    assert_eq!((r.method, r.mapping.clone()), ("copy+expunge", vec![(2, 2), (3, 3)]));
    assert_only(&in0, &snapshot(&dc, "INBOX"), &[(2, None), (3, None)], 0);
    // The copies keep their flags (\Seen on 2), and do not inherit our \Deleted.
    let other1 = snapshot(&dc, "Other");
    assert_only(&other0, &other1, &[], 2);
    assert_eq!((other1.flags[&2].clone(), other1.flags[&3].clone()), (vec!["\\Seen".to_string()], vec![]));
    assert!(snapshot(&dc, "INBOX").flags[&5].contains(&"\\Deleted".to_string()), "the user's \\Deleted message stays");
    let r = imap.move_messages(&ctx, &inbox, v, &[2, 3], &folder("Other")).unwrap();
    assert_eq!((r.method, r.mapping.len(), r.dest_uidvalidity), ("copy+expunge", 0, None), "nothing left to move");
    assert_only(&other0, &snapshot(&dc, "Other"), &[], 2);
}

#[test]
fn servers_without_uidplus_move_or_unselect() {
    // No UIDPLUS, MOVE, UNSELECT, LITERAL+ or THREAD: moving and expunging are refused,
    // sessions are deselected by EXAMINE, APPEND waits for the continuation.
    let caps = "imap_capability = IMAP4rev1 IDLE SORT SPECIAL-USE LIST-STATUS\n";
    let dc = Dovecot::start_with(&small_seed(), caps);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let v = uidvalidity(&imap, &ctx, "INBOX");
    let in0 = snapshot(&dc, "INBOX");
    let e = imap.move_messages(&ctx, &inbox, v, &[1], &folder("Other")).unwrap_err();
    assert_eq!(e.code(), "unsupported");
    assert!(e.to_string().contains("neither MOVE nor UIDPLUS"), "{e}");
    let e = imap.expunge_messages(&ctx, &inbox, v, &[1]).unwrap_err();
    assert_eq!(e.code(), "unsupported");
    assert_eq!(snapshot(&dc, "INBOX"), in0);
    // Copy needs neither.
    let r = imap.copy_messages(&ctx, &inbox, v, &[1], &folder("Other")).unwrap();
    assert_eq!((r.method, r.mapping.len()), ("copy", 1), "Dovecot still reports COPYUID");
    // Flags work, and the session is deselected by EXAMINE afterwards (then reused for a read
    // that does not set \Seen).
    imap.store_flags(&ctx, &inbox, v, &[1], &flags(&["$X"]), &[]).unwrap();
    assert_only(&in0, &snapshot(&dc, "INBOX"), &[(1, Some(&["$X"]))], 0);
    imap.fetch_message(&ctx, &inbox, v, 3).unwrap();
    assert!(!snapshot(&dc, "INBOX").flags[&3].contains(&"\\Seen".to_string()));
    // No THREAD=REFERENCES: None, not an error.
    assert_eq!(imap.thread_references(&ctx, &inbox, v, 1).unwrap(), None);
    // APPEND with a synchronizing literal.
    let raw = dovecot::crlf("From: me@example.test\nSubject: sync\n\nhello\n");
    // (Dovecot reports APPENDUID even when UIDPLUS is hidden.)
    imap.append(&ctx, &folder("Other"), &flags(&["\\Seen"]), &raw).unwrap();
    let other_v = uidvalidity(&imap, &ctx, "Other");
    let s = imap.search(&ctx, &folder("Other"), &SearchQuery { subject: Some("sync".into()), ..Default::default() }).unwrap();
    assert_eq!(imap.fetch_message(&ctx, &folder("Other"), other_v, s.uids[0]).unwrap().raw, raw);
    let e = imap.append(&ctx, &folder("No such"), &[], &raw).unwrap_err();
    assert_eq!(e.to_string(), "folder \"No such\" not found");
    let st = imap.stats();
    assert_eq!((st.connects, st.discarded), (1, 0), "{st:?}");
}

#[test]
fn folders_are_created_renamed_and_deleted() {
    let dc = Dovecot::start(&Seed::Standard);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let counts = |imap: &ImapClient| -> BTreeMap<String, Option<u32>> {
        imap.list_folders(&ctx).unwrap().into_iter().map(|f| (f.name, f.messages)).collect()
    };
    let before = counts(&imap);

    // Quotes, a backslash, a literal look-alike and non-ASCII, nested under a new parent.
    let odd = "Projekte/Größe \"q\" {3} back\\slash";
    imap.create_folder(&ctx, &folder(odd)).unwrap();
    let now = counts(&imap);
    assert_eq!(now.get(odd), Some(&Some(0)), "{now:?}");
    assert!(now.contains_key("Projekte"), "{now:?}");
    let lsub = dc.imap().ok("LSUB \"\" \"*\"").join("\n");
    assert!(lsub.contains(&dovecot::mutf7("Größe")), "subscribed: {lsub}");
    let e = imap.create_folder(&ctx, &folder(odd)).unwrap_err();
    assert_eq!((e.code(), e.to_string()), ("already_exists", format!("folder {odd:?} already exists")));
    assert_eq!(imap.create_folder(&ctx, &folder("inbox")).unwrap_err().code(), "already_exists");

    let renamed = "Projekte/Erledigt ✓";
    imap.rename_folder(&ctx, &folder(odd), &folder(renamed)).unwrap();
    let now = counts(&imap);
    assert!(now.contains_key(renamed) && !now.contains_key(odd), "{now:?}");
    let e = imap.rename_folder(&ctx, &folder(odd), &folder("Elsewhere")).unwrap_err();
    assert_eq!(e.to_string(), format!("folder {odd:?} not found"));
    let e = imap.rename_folder(&ctx, &folder(renamed), &folder(dovecot::ARCHIVE)).unwrap_err();
    assert_eq!(e.code(), "already_exists", "{e}");

    // INBOX and special-use folders are protected.
    let cases = [
        (imap.delete_folder(&ctx, &folder("INBOX")), "invalid folder: INBOX cannot be deleted"),
        (
            imap.delete_folder(&ctx, &folder("Trash")),
            "invalid folder: \"Trash\" is the trash folder; special-use folders cannot be deleted",
        ),
        (
            imap.rename_folder(&ctx, &folder("Sent"), &folder("Old")),
            "invalid folder: \"Sent\" is the sent folder; special-use folders cannot be renamed",
        ),
        (imap.rename_folder(&ctx, &folder("Inbox"), &folder("Old")), "invalid folder: INBOX cannot be renamed"),
        (imap.delete_folder(&ctx, &folder("No such")), "folder \"No such\" not found"),
    ];
    for (result, want) in cases {
        assert_eq!(result.unwrap_err().to_string(), want);
    }

    imap.delete_folder(&ctx, &folder(renamed)).unwrap();
    assert_eq!(counts(&imap), before, "every other folder and its count unchanged");
}

#[test]
fn append_drafts_and_big_messages() {
    let dc = Dovecot::start(&Seed::Standard);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };

    let roles = [("drafts", "Drafts"), ("sent", "Sent"), ("trash", "Trash"), ("junk", "Junk"), ("archive", "Archive"), ("inbox", "INBOX")];
    for (role, name) in roles {
        assert_eq!(imap.folder_with_role(&ctx, role).unwrap(), Some(folder(name)), "{role}");
    }
    assert_eq!(imap.folder_with_role(&ctx, "flagged").unwrap(), None);
    let e = imap.folder_with_role(&ctx, "Trash\r\n").unwrap_err();
    assert_eq!(e.to_string(), "invalid role: must be one of inbox, drafts, sent, trash, junk, archive, all, flagged");

    // A draft with \Draft and the review keyword: APPENDUID, exact bytes, exact flags.
    let drafts = imap.folder_with_role(&ctx, "drafts").unwrap().unwrap();
    let drafts0 = snapshot(&dc, "Drafts");
    let raw = dovecot::crlf(
        "From: alice@example.test\nTo: bob@example.test\nSubject: Draft reply\nMessage-ID: <d1@example.test>\n\nDraft body\n",
    );
    let (v, uid) = imap.append(&ctx, &drafts, &flags(&["\\Draft", "$PendingReview"]), &raw).unwrap().expect("APPENDUID");
    assert_eq!(v, uidvalidity(&imap, &ctx, "Drafts"));
    let drafts1 = snapshot(&dc, "Drafts");
    assert_only(&drafts0, &drafts1, &[], 1);
    assert_eq!(drafts1.flags[&uid], ["$PendingReview", "\\Draft"]);
    assert_eq!(imap.fetch_raw(&ctx, &drafts, v, uid, 1 << 20).unwrap().raw, raw);

    // Bytes that are not UTF-8 go out with a synchronizing literal even under LITERAL+.
    let latin = [&b"Subject: caf"[..], &[0xe9], b"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nd\xe9j\xe0 vu\r\n"].concat();
    let (_, uid2) = imap.append(&ctx, &drafts, &[], &latin).unwrap().expect("APPENDUID");
    assert_eq!(imap.fetch_raw(&ctx, &drafts, v, uid2, 1 << 20).unwrap().raw, latin);

    // 25 MB within limits.max_send_bytes (the default), read back partially and whole.
    let mut big = dovecot::crlf("From: alice@example.test\nSubject: big\nContent-Type: application/octet-stream\n\n");
    let line = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n";
    while big.len() + line.len() <= 25 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    let t = std::time::Instant::now();
    let (_, big_uid) = imap.append(&ctx, &drafts, &[], &big).unwrap().expect("APPENDUID");
    println!("APPEND of {} bytes took {:?}", big.len(), t.elapsed());
    let head = imap.fetch_raw(&ctx, &drafts, v, big_uid, 100).unwrap();
    assert_eq!((head.raw.as_slice(), head.truncated, head.size as usize), (&big[..100], true, big.len()));
    let t = std::time::Instant::now();
    let whole = imap.fetch_raw(&ctx, &drafts, v, big_uid, 26 * 1024 * 1024).unwrap();
    println!("fetch_raw of {} bytes took {:?}", big.len(), t.elapsed());
    assert!(!whole.truncated && whole.raw == big);

    // Refusals.
    let small = client_with(&dc, |_, l| l.max_send_bytes = 1024);
    let e = small.append(&ctx, &drafts, &[], &[b'x'; 1025]).unwrap_err();
    assert_eq!(e.to_string(), "invalid message: is 1025 bytes, more than limits.max_send_bytes (1024)");
    let e = imap.append(&ctx, &drafts, &[], b"Subject: x\r\n\r\na\0b\r\n").unwrap_err();
    assert_eq!(e.to_string(), "invalid message: contains a NUL byte");
    let e = imap.append(&ctx, &folder("No such"), &[], &raw).unwrap_err();
    assert_eq!(e.to_string(), "folder \"No such\" not found");
    let e = imap.append(&ctx, &drafts, &[Flag::Keyword("$x\r\nA1 LOGOUT".into())], &raw).unwrap_err();
    assert_eq!(e.to_string(), "invalid flags: contains a carriage return (CR)");
    assert_only(&drafts1, &snapshot(&dc, "Drafts"), &[], 2);
}

#[test]
fn parts_raw_source_and_threads() {
    let dc = Dovecot::start(&Seed::Standard);
    let imap = client(&dc);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let v = uidvalidity(&imap, &ctx, "INBOX");
    let std_inbox = dovecot::standard_inbox();
    let uid_of = |key: &str| std_inbox.iter().position(|m| m.key == key).unwrap() as u32 + 1;
    let before = snapshot(&dc, "INBOX");

    // The PDF attachment (part 2), whole and truncated; its MIME header.
    let att = uid_of("attachments");
    let p = imap.fetch_part(&ctx, &inbox, v, att, "2", 1 << 20).unwrap();
    let header = String::from_utf8(p.mime_header.clone()).unwrap();
    assert!(header.contains(&format!("filename=\"{}\"", dovecot::ATTACHMENT_PDF_NAME)), "{header}");
    assert!(header.starts_with("Content-Type: application/pdf"), "{header}");
    let b64: String = String::from_utf8(p.data.clone()).unwrap().split_whitespace().collect();
    assert!(!p.truncated);
    assert!(b64.starts_with(&dovecot::base64(b"%PDF-1.4")[..8]), "{b64}");
    let short = imap.fetch_part(&ctx, &inbox, v, att, "2", 10).unwrap();
    assert_eq!((short.data.as_slice(), short.truncated), (&p.data[..10], true));
    let exact = imap.fetch_part(&ctx, &inbox, v, att, "2", p.data.len() as u64).unwrap();
    assert_eq!((exact.data.len(), exact.truncated), (p.data.len(), false));
    let txt = imap.fetch_part(&ctx, &inbox, v, att, "3", 1 << 20).unwrap();
    let b64: String = String::from_utf8(txt.data).unwrap().split_whitespace().collect();
    assert_eq!(b64, dovecot::base64(dovecot::ATTACHMENT_TXT_CONTENT.as_bytes()));
    // Part 1 of a multipart message has its own MIME header; of a plain one, the message header.
    let p1 = imap.fetch_part(&ctx, &inbox, v, att, "1", 1 << 20).unwrap();
    assert_eq!(p1.mime_header, b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
    let plain = uid_of("plain");
    let p1 = imap.fetch_part(&ctx, &inbox, v, plain, "1", 1 << 20).unwrap();
    let raw = &std_inbox[plain as usize - 1].raw;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!((p1.mime_header.as_slice(), p1.data.as_slice()), (&raw[..split], &raw[split..]));
    // Nested parts, missing parts, missing messages, stale UIDVALIDITY.
    let nested = uid_of("nested");
    let html = imap.fetch_part(&ctx, &inbox, v, nested, "1.2", 1 << 20).unwrap();
    assert!(String::from_utf8_lossy(&html.mime_header).contains("text/html"));
    let cases = [
        (imap.fetch_part(&ctx, &inbox, v, att, "9", 100), "part 9 of message uid 9 not found"),
        (imap.fetch_part(&ctx, &inbox, v, 4242, "1", 100), "message uid 4242 in folder \"INBOX\" not found"),
        (imap.fetch_part(&ctx, &inbox, v, att, "2.x", 100), "invalid part: `2.x` is not a part number like 1 or 2.1.3"),
        (imap.fetch_part(&ctx, &inbox, v, att, "2]\r\nA1 LOGOUT", 100), "invalid part: contains a carriage return (CR)"),
        (imap.fetch_part(&ctx, &inbox, v + 1, att, "2", 100), ""),
    ];
    for (result, want) in cases {
        let e = result.unwrap_err();
        if want.is_empty() {
            assert_eq!(e.code(), "uidvalidity_changed");
        } else {
            assert_eq!(e.to_string(), want);
        }
    }

    // fetch_raw: the caller's bound.
    let m = imap.fetch_raw(&ctx, &inbox, v, plain, 7).unwrap();
    assert_eq!((m.raw.as_slice(), m.truncated), (&raw[..7], true));

    // THREAD=REFERENCES: the thread of any member, ascending.
    let thread: Vec<u32> = dovecot::THREAD_SEQS.iter().map(|&s| s as u32).collect();
    for member in [thread[0], thread[3], thread[5]] {
        assert_eq!(imap.thread_references(&ctx, &inbox, v, member).unwrap(), Some(thread.clone()), "{member}");
    }
    let lone = uid_of("utf8-b");
    assert_eq!(imap.thread_references(&ctx, &inbox, v, lone).unwrap(), Some(vec![lone]));
    assert_eq!(imap.thread_references(&ctx, &inbox, v, 4242).unwrap_err().code(), "not_found");
    assert_eq!(imap.thread_references(&ctx, &inbox, v + 1, plain).unwrap_err().code(), "uidvalidity_changed");

    // Nothing read set \Seen; one session did it all.
    assert_eq!(snapshot(&dc, "INBOX"), before);
    let s = imap.stats();
    assert_eq!((s.connects, s.discarded), (1, 0), "{s:?}");
}

#[test]
fn invalid_write_arguments_fail_before_any_connection() {
    // Port 9 on loopback: nothing listens; a connection attempt would be connect_failed.
    let text = "[accounts.fake]\nemail = \"me@example.test\"\n[accounts.fake.imap]\nhost = \"127.0.0.1\"\nport = 9\nusername = \"me\"\npassword = { env = \"MAILMOAT_TEST_FAKE_PASS_51c\" }\n";
    let cfg = Config::parse(text, Path::new("/test/fake.toml")).unwrap();
    let imap = ImapClient::new(Arc::new(cfg.accounts["fake"].clone()), Arc::new(cfg.limits));
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let (f, to) = (folder("INBOX"), folder("Archive"));
    let bad_kw = Flag::Keyword("$a\r\nA1 EXPUNGE".into());
    let many: Vec<u32> = (1..=101).collect();
    let cases: Vec<(Result<(), ImapError>, &str)> = vec![
        (
            imap.store_flags(&ctx, &f, 1, &[1], std::slice::from_ref(&bad_kw), &[]).map(drop),
            "invalid flags: contains a carriage return (CR)",
        ),
        (imap.store_flags(&ctx, &f, 1, &[1], &[], &[Flag::Keyword("a\nb".into())]).map(drop), "invalid flags: contains a line feed (LF)"),
        (imap.store_flags(&ctx, &f, 1, &[1], &[Flag::Keyword("a\0".into())], &[]).map(drop), "invalid flags: contains a NUL byte"),
        (imap.store_flags(&ctx, &f, 1, &[], &[Flag::Seen], &[]).map(drop), "invalid uids: must name at least one message"),
        (imap.store_flags(&ctx, &f, 1, &[0], &[Flag::Seen], &[]).map(drop), "invalid uids: uid 0 does not exist (uids start at 1)"),
        (
            imap.store_flags(&ctx, &f, 1, &many, &[Flag::Seen], &[]).map(drop),
            "invalid uids: more than 100 messages in one call (limits.max_batch)",
        ),
        (imap.store_flags(&ctx, &f, 1, &[1], &[Flag::Seen], &[Flag::Seen]).map(drop), "invalid flags: \\Seen is both added and removed"),
        (imap.store_labels(&ctx, &f, 1, &[1], &["a\r\nb".into()], &[]).map(drop), "invalid labels: contains a carriage return (CR)"),
        (imap.store_labels(&ctx, &f, 1, &[1], &[], &["a\0".into()]).map(drop), "invalid labels: contains a NUL byte"),
        (imap.move_messages(&ctx, &f, 1, &[0], &to).map(drop), "invalid uids: uid 0 does not exist (uids start at 1)"),
        (imap.copy_messages(&ctx, &f, 1, &many, &to).map(drop), "invalid uids: more than 100 messages in one call (limits.max_batch)"),
        (imap.expunge_messages(&ctx, &f, 1, &[]).map(drop), "invalid uids: must name at least one message"),
        (imap.append(&ctx, &f, &[bad_kw], b"x").map(drop), "invalid flags: contains a carriage return (CR)"),
        (imap.append(&ctx, &f, &[], b"a\0").map(drop), "invalid message: contains a NUL byte"),
        (imap.append(&ctx, &f, &[], b"").map(drop), "invalid message: is empty"),
        (imap.fetch_part(&ctx, &f, 1, 1, "1\r\n", 10).map(drop), "invalid part: contains a carriage return (CR)"),
        (imap.fetch_part(&ctx, &f, 1, 0, "1", 10).map(drop), "invalid uid: uid 0 does not exist (uids start at 1)"),
        (imap.fetch_raw(&ctx, &f, 1, 0, 10).map(drop), "invalid uid: uid 0 does not exist (uids start at 1)"),
        (imap.thread_references(&ctx, &f, 1, 0).map(drop), "invalid uid: uid 0 does not exist (uids start at 1)"),
        (
            imap.folder_with_role(&ctx, "drafts\n").map(drop),
            "invalid role: must be one of inbox, drafts, sent, trash, junk, archive, all, flagged",
        ),
        (imap.move_messages(&ctx, &f, 1, &[1], &folder("inbox")).map(drop), "invalid to_folder: is the folder the messages are in"),
        (imap.create_folder(&ctx, &folder("Inbox")), "folder \"INBOX\" already exists"),
        (imap.rename_folder(&ctx, &to, &folder("INBOX")), "folder \"INBOX\" already exists"),
        (imap.rename_folder(&ctx, &to, &to), "invalid to_folder: is the folder's current name"),
    ];
    for (result, want) in cases {
        assert_eq!(result.unwrap_err().to_string(), want);
    }
    // Folder names cannot even be built with CR, LF or NUL.
    for bad in ["a\r\nb", "a\nb", "a\0b"] {
        assert_eq!(MailboxName::new(bad).unwrap_err().field, "folder");
    }
    assert_eq!(imap.stats().connects, 0);
}

// ---- scripted servers over real TLS (tests/common/fakeimap.rs) ----

/// SELECT (and EXAMINE) answer for a folder of 3 messages with UIDVALIDITY 7.
const SELECT_OK: &str =
    "* FLAGS (\\Seen)\r\n* OK [PERMANENTFLAGS (\\Seen \\Flagged \\Deleted \\*)] p\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n{tag} OK [READ-WRITE] done\r\n";

/// The commands `fake` received besides the login's and the logout, each up to its first
/// literal, tags removed.
fn sent(fake: &FakeImap) -> Vec<String> {
    let session = |c: &String| !(c == "CAPABILITY" || c == "LOGOUT" || c.starts_with("AUTHENTICATE PLAIN"));
    fake.commands().into_iter().filter(session).map(|c| c.split("\r\n").next().unwrap_or_default().to_string()).collect()
}

#[test]
fn gmail_labels_and_hostile_copyuid() {
    let plan = Plan::good()
        .caps("IMAP4rev1 AUTH=PLAIN X-GM-EXT-1 UIDPLUS MOVE UNSELECT")
        .answer("SELECT", SELECT_OK)
        .answer("EXAMINE", SELECT_OK)
        // Our message plus an unsolicited one; system labels, escapes, modified UTF-7.
        .answer(
            "UID FETCH",
            "* 9 FETCH (UID 99 X-GM-LABELS (\\Inbox))\r\n* 1 FETCH (UID 4 X-GM-LABELS (\\Important \"B&APw-ro\" \"say \\\"hi\\\"\"))\r\n{tag} OK done\r\n",
        )
        // A COPYUID that claims the whole UID space: not believed, not expanded.
        .answer("UID MOVE", "* OK [COPYUID 9 1:4294967295 1:4294967295] moved\r\n* 1 EXPUNGE\r\n{tag} OK done\r\n")
        .answer("UID STORE", "{tag} OK done\r\n");
    let fake = FakeImap::serving("gmail", plan);
    let imap = fake.client(|_, _| {});
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    let (how, got) = imap.store_labels(&ctx, &inbox, 7, &[4], &["Büro".into(), "\\Important".into()], &["say \"hi\"".into()]).unwrap();
    assert_eq!(how, "x-gm-labels");
    assert_eq!(got, [(4, vec!["\\Important".to_string(), "Büro".to_string(), "say \"hi\"".to_string()])]);
    let r = imap.move_messages(&ctx, &inbox, 7, &[1], &folder("Archive")).unwrap();
    assert_eq!((r.method, r.mapping.len(), r.dest_uidvalidity), ("move", 0, Some(9)));
    let e = imap.store_labels(&ctx, &inbox, 7, &[4], &["\\Bad label".into()], &[]).unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    assert_eq!(
        sent(&fake),
        [
            "SELECT \"INBOX\"",
            "UID STORE 4 +X-GM-LABELS.SILENT (\"B&APw-ro\" \\Important)",
            "UID STORE 4 -X-GM-LABELS.SILENT (\"say \\\"hi\\\"\")",
            "UID FETCH 4 (UID X-GM-LABELS)",
            "UNSELECT",
            "SELECT \"INBOX\"",
            "UID MOVE 1 \"Archive\"",
            "UNSELECT",
        ]
    );
    assert_eq!(fake.connections(), 1);
}

#[test]
fn a_write_that_may_have_happened_is_not_retried() {
    // The pooled session breaks right after receiving a COPY: the copy may have happened, so
    // it must not be repeated on a fresh connection (a read would be).
    let plan = Plan::good()
        .caps("IMAP4rev1 AUTH=PLAIN UIDPLUS")
        .answer("EXAMINE", SELECT_OK)
        .answer("SELECT", SELECT_OK)
        .on("UID COPY", vec![Step::Close])
        .answer("LIST", "* LIST () \"/\" INBOX\r\n{tag} OK done\r\n");
    let fake = FakeImap::serving("no-retry", plan);
    let imap = fake.client(|_, l| l.idle_check_after_ms = 3_600_000);
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    imap.list_folders(&ctx).unwrap();
    let e = imap.copy_messages(&ctx, &folder("INBOX"), 7, &[1], &folder("Archive")).unwrap_err();
    assert_eq!(e.code(), "protocol_error", "{e}");
    let copies = sent(&fake).iter().filter(|c| c.starts_with("UID COPY")).count();
    assert_eq!(copies, 1, "the COPY was sent once");
    let s = imap.stats();
    assert_eq!((s.connects, s.discarded, s.open), (1, 1, 0), "{s:?}");
}

#[test]
fn synchronizing_append_answers() {
    // Without LITERAL+: a refusal instead of the continuation keeps the session; untagged data
    // before the tagged OK does not hide APPENDUID; the literal arrives intact.
    let plan = Plan::good()
        .caps("IMAP4rev1 AUTH=PLAIN UIDPLUS APPENDLIMIT=100")
        .refuse_literal("APPEND \"Missing\"", "{tag} NO [TRYCREATE] Mailbox doesn't exist: Missing\r\n")
        .answer("APPEND", "* 4 EXISTS\r\n* NO [ALERT] quota at 90%\r\n{tag} OK [APPENDUID 38505 3955] done\r\n");
    let fake = FakeImap::serving("append", plan);
    let imap = fake.client(|_, _| {});
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let e = imap.append(&ctx, &folder("Missing"), &[], b"Subject: x\r\n\r\ny\r\n").unwrap_err();
    assert_eq!(e.to_string(), "folder \"Missing\" not found");
    let msg = b"Subject: caf\xe9\r\n\r\n{5}\r\nbody\r\n".to_vec();
    let r = imap.append(&ctx, &folder("Say \"hi\" \\ Entwürfe"), &flags(&["\\Draft", "$PendingReview"]), &msg).unwrap();
    assert_eq!(r, Some((38505, 3955)));
    let literals: Vec<Vec<u8>> = fake.logs().into_iter().flat_map(|l| l.literals).collect();
    assert_eq!(literals, vec![msg.clone()]);
    // Over the server's APPENDLIMIT: refused before anything is sent.
    let e = imap.append(&ctx, &folder("Drafts"), &[], &[b'x'; 101]).unwrap_err();
    assert_eq!(e.to_string(), "not supported by the server: a message of 101 bytes (its APPENDLIMIT is 100)");
    assert_eq!(
        sent(&fake),
        [
            "APPEND \"Missing\" () {17}".to_string(),
            format!("APPEND \"Say \\\"hi\\\" \\\\ Entw&APw-rfe\" (\\Draft $PendingReview) {{{}}}", msg.len()),
        ]
    );
    let s = imap.stats();
    assert_eq!((s.connects, s.discarded), (1, 0), "{s:?}");
}

#[test]
fn thread_lines_never_reach_the_imap_crate() {
    // A THREAD answer with unsolicited data around it, then the session keeps working.
    let plan = Plan::good()
        .caps("IMAP4rev1 AUTH=PLAIN THREAD=REFERENCES")
        .answer("EXAMINE", SELECT_OK)
        .answer("UID THREAD", "* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n* THREAD (5 (6)(7 8))(9)\r\n* 3 EXISTS\r\n{tag} OK done\r\n")
        .answer("UID SEARCH", "* SEARCH 9 5\r\n{tag} OK done\r\n");
    let fake = FakeImap::serving("thread", plan);
    let imap = fake.client(|_, _| {});
    let tok = CancelToken::new();
    let ctx = OpCtx { cancel: &tok, progress: &no_progress };
    let inbox = folder("INBOX");
    assert_eq!(imap.thread_references(&ctx, &inbox, 7, 8).unwrap(), Some(vec![5, 6, 7, 8]));
    assert_eq!(imap.thread_references(&ctx, &inbox, 7, 9).unwrap(), Some(vec![9]));
    assert_eq!(imap.thread_references(&ctx, &inbox, 7, 4).unwrap_err().code(), "not_found");
    assert_eq!(imap.search(&ctx, &inbox, &SearchQuery::default()).unwrap().uids, [9, 5]);
    let s = imap.stats();
    assert_eq!((s.connects, s.discarded), (1, 0), "{s:?}");
}
