use super::*;
use crate::contract::message;
use std::path::Path;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(JournalStore::open(JournalOptions::in_dir(dir)).unwrap())
}

crate::contract::store_contract!(open);

/// Options with small segments (and snapshots), so that tests cross them.
fn small(dir: &Path, segment_bytes: u64, snapshot_every_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        snapshot_every_bytes,
        ..JournalOptions::in_dir(dir)
    }
}

/// What the disk holds right now, as a crash would leave it: the files of
/// an open store, copied.
fn crash_image(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    copy_dir(from, to.path());
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            match std::fs::copy(e.path(), target) {
                Ok(_) => {}
                // Renamed away while the image was taken: a temporary file
                // of the background work, a later segment's preparation
                // (`.tmp` → `.new`) or a snapshot's, racing the copy (seen
                // once in CI). A crash before the file was
                // made would leave it out too, and images are taken after
                // every write of the test was acknowledged, so no
                // acknowledged record is in it.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("copying {}: {err}", e.path().display()),
            }
        }
    }
}

fn ids(v: &[InboxEntry]) -> Vec<u64> {
    v.iter().map(|e| e.msg_id).collect()
}

fn last_segment(dir: &Path) -> PathBuf {
    let journal = JournalOptions::in_dir(dir).dir;
    let mut segs: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// Stores `n` messages to `a` (ids 10, 11, …) and closes the store.
async fn fill_and_close(store: JournalStore, n: u64) {
    for i in 0..n {
        store
            .append_message(message(1, &["a"], 10 + i))
            .await
            .unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn acknowledged_messages_are_in_a_crash_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(small(dir.path(), 4096, 1 << 40)).unwrap();
    for i in 0..200u64 {
        store
            .append_message(message(1, &[&format!("u{}", i % 7)], 10 + i))
            .await
            .unwrap();
    }
    store.save_device_cursor(1, "u3", "phone", 5).await.unwrap();
    // No close, no snapshot: everything comes from replaying the log.
    let image = crash_image(dir.path());
    let again = JournalStore::open(small(image.path(), 4096, 1 << 40)).unwrap();
    let mut total = 0;
    for u in 0..7 {
        let inbox = again
            .inbox_after(1, &format!("u{u}"), 0, 1000)
            .await
            .unwrap();
        let want: Vec<u64> = (0..200u64).filter(|i| i % 7 == u).map(|i| 10 + i).collect();
        if u == 3 {
            assert_eq!(
                ids(&inbox),
                want[5..].to_vec(),
                "what the only device acknowledged is gone"
            );
        } else {
            assert_eq!(ids(&inbox), want);
        }
        total += want.len();
    }
    assert_eq!(total, 200);
    assert_eq!(
        again.device_cursor(1, "u3", "phone").await.unwrap(),
        Some(5)
    );
    assert_eq!(again.max_message_id().await.unwrap(), 209);
    // The log went on over several segments; and goes on after reopening.
    let segments = std::fs::read_dir(JournalOptions::in_dir(image.path()).dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(segments > 3, "{segments} segments");
    let r = again
        .append_message(message(1, &["u0"], 500))
        .await
        .unwrap();
    assert_eq!(r[0].seq, 30);
    assert!(
        again
            .append_message(message(1, &["u0"], 100))
            .await
            .is_err(),
        "an id at or below the largest stored is refused after a restart"
    );
    again.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_torn_write_is_cut_off_and_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || small(dir.path(), 1 << 20, 1 << 40);
    let store = JournalStore::open(opts()).unwrap();
    store.append_message(message(1, &["a"], 10)).await.unwrap();
    store.append_message(message(1, &["a"], 11)).await.unwrap();
    store.append_message(message(1, &["a"], 12)).await.unwrap();
    store.close().await;
    drop(store);
    std::fs::remove_file(JournalOptions::in_dir(dir.path()).dir.join("snapshot")).unwrap();

    // As if the write of the batch holding 11 and 12 was cut short: the
    // header of 11 never reached the disk, 12 did.
    let seg = last_segment(dir.path());
    let mut raw = std::fs::read(&seg).unwrap();
    let files = Files::new(Layout {
        dir: seg.parent().unwrap().to_path_buf(),
        segment_bytes: 1 << 20,
    });
    let mut frames = Vec::new();
    let mut scan = Scanner::new(&files, 0);
    while let Step::Record { offset, next } = scan.next().unwrap() {
        frames.push((offset as usize, next as usize));
    }
    assert_eq!(frames.len(), 3);
    let (second, _) = frames[1];
    raw[second..second + 8].fill(0);
    std::fs::write(&seg, &raw).unwrap();

    let store = JournalStore::open(opts()).unwrap();
    assert_eq!(
        ids(&store.inbox_after(1, "a", 0, 10).await.unwrap()),
        vec![10]
    );
    // A shorter record where 11 was: 12's bytes must not resurface after it.
    let mut short = message(1, &["a"], 20);
    short.body = "{}".into();
    short.ext = None;
    short.options.sync_device = false;
    store.append_message(short).await.unwrap();
    store.close().await;
    drop(store);
    std::fs::remove_file(JournalOptions::in_dir(dir.path()).dir.join("snapshot")).unwrap();
    let store = JournalStore::open(opts()).unwrap();
    assert_eq!(
        ids(&store.inbox_after(1, "a", 0, 10).await.unwrap()),
        vec![10, 20]
    );
    store.close().await;
}

#[tokio::test]
async fn garbage_after_the_end_is_cleared_and_later_segments_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || small(dir.path(), 8192, 1 << 40);
    let store = JournalStore::open(opts()).unwrap();
    store.append_message(message(1, &["a"], 10)).await.unwrap();
    store.close().await;
    drop(store);
    let journal = JournalOptions::in_dir(dir.path()).dir;
    std::fs::remove_file(journal.join("snapshot")).unwrap();
    // A later segment (a batch that crossed into it before the crash) and
    // bytes of a torn record after the end.
    std::fs::write(journal.join("0000000005.seg"), vec![1u8; 8192]).unwrap();
    let seg0 = journal.join("0000000000.seg");
    let mut raw = std::fs::read(&seg0).unwrap();
    let end = raw.iter().rposition(|b| *b != 0).unwrap() + 1;
    raw[end + 100..end + 120].fill(0xAB);
    std::fs::write(&seg0, &raw).unwrap();

    let store = JournalStore::open(opts()).unwrap();
    assert!(!journal.join("0000000005.seg").exists());
    let raw = std::fs::read(&seg0).unwrap();
    assert!(raw[end..].iter().all(|b| *b == 0), "cleared");
    assert_eq!(
        ids(&store.inbox_after(1, "a", 0, 10).await.unwrap()),
        vec![10]
    );
    store.close().await;
}

#[tokio::test]
async fn damage_in_the_middle_of_the_log_is_refused_not_cut_off() {
    // With segments of 4 KiB, a span of 16 KiB stands for "further than a
    // crash's unsynced batch reaches" (the real span is tens of MiB).
    let span = 4 * 4096;
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(small(dir.path(), 4096, 1 << 40)).unwrap();
    for i in 0..2000u64 {
        store
            .append_message(message(1, &["a"], 10 + i))
            .await
            .unwrap();
    }
    let image = crash_image(dir.path());
    store.close().await;
    let journal = JournalOptions::in_dir(image.path()).dir;
    let files = Files::new(Layout {
        dir: journal.clone(),
        segment_bytes: 4096,
    });
    let segments = files.layout.segments().unwrap();
    assert!(segments.len() > 8, "{segments:?}");
    // The whole log replays with the small span: no false alarm.
    let (_, end) = recover(&files, State::default(), span).unwrap();
    assert!(end > 8 * 4096);

    // A record of the second segment loses its header (a sector the disk
    // lost): the replay cannot go on, yet many segments follow.
    let second = journal.join(format!("{:010}.seg", segments[1]));
    let mut raw = std::fs::read(&second).unwrap();
    raw[0..8].fill(0xEE);
    std::fs::write(&second, &raw).unwrap();
    let files = Files::new(files.layout.clone());
    match recover(&files, State::default(), span) {
        Err(StorageError::Corrupt(why)) => assert!(why.contains("cannot be read past"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|(_, end)| end)),
    }
    assert_eq!(
        files.layout.segments().unwrap(),
        segments,
        "nothing removed"
    );
    assert_eq!(std::fs::read(&second).unwrap(), raw, "nothing zeroed");
}

#[tokio::test]
async fn snapshots_are_taken_and_replay_starts_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |d: &Path| small(d, 1 << 16, 4096);
    let store = JournalStore::open(opts(dir.path())).unwrap();
    for i in 0..300u64 {
        store
            .append_message(message(1, &["a", "b"], 1000 + 2 * i))
            .await
            .unwrap();
    }
    let snapshot = JournalOptions::in_dir(dir.path()).dir.join("snapshot");
    // The snapshot thread runs beside the writer: wait for its file.
    for _ in 0..100 {
        if snapshot.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(snapshot.exists());
    let taken = snapshot::load(snapshot.parent().unwrap()).unwrap().unwrap();
    assert!(taken.applied_to > 0);
    assert!(taken.last_seq(1, "a") > 0);

    let image = crash_image(dir.path());
    let again = JournalStore::open(opts(image.path())).unwrap();
    assert_eq!(again.inbox_after(1, "b", 0, 1000).await.unwrap().len(), 300);
    assert_eq!(again.offline_count(1, "a").await.unwrap(), 300);

    // A damaged snapshot costs only time: the whole log is replayed.
    let damaged = crash_image(dir.path());
    let snap = JournalOptions::in_dir(damaged.path()).dir.join("snapshot");
    let mut raw = std::fs::read(&snap).unwrap();
    raw[20] ^= 0xff;
    std::fs::write(&snap, raw).unwrap();
    let third = JournalStore::open(opts(damaged.path())).unwrap();
    assert_eq!(third.inbox_after(1, "a", 0, 1000).await.unwrap().len(), 300);
    assert_eq!(
        third
            .find_entry(1, 1000 + 2 * 150 + 1)
            .await
            .unwrap()
            .unwrap()
            .owner,
        "b"
    );
    for s in [again, third] {
        s.close().await;
    }
    store.close().await;
}

#[tokio::test]
async fn history_pages_back_through_a_long_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(small(dir.path(), 1 << 14, 1 << 40)).unwrap();
    let mut id = 100;
    for i in 0..120 {
        let (from, to) = if i % 3 == 0 { ("b", "a") } else { ("a", "b") };
        let mut m = message(1, &[to], id);
        m.from = from.into();
        m.recipients[0].peer = from.into();
        m.recipients
            .push(chatd_core::Recipient::sync_copy(from, to, id));
        store.append_message(m).await.unwrap();
        // Other conversations in between.
        store
            .append_message(message(1, &["c"], id + 1))
            .await
            .unwrap();
        id += 2;
    }
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let page = store.history(1, "a", "b", before, 25).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap().msg_id);
        seen.extend(ids(&page));
    }
    let want: Vec<u64> = (0..120).rev().map(|i| 100 + 2 * i).collect();
    assert_eq!(seen, want);
    let newest = store.history(1, "b", "a", None, 1).await.unwrap();
    assert_eq!(newest[0].msg_id, 100 + 2 * 119);
    assert_eq!(newest[0].from, "a");
    store.close().await;
}

/// Flips a byte of the one record whose bytes hold `marker`, in the log
/// files under `dir` (the page cache sees it at once).
fn damage_record_holding(dir: &Path, marker: &[u8]) {
    let journal = JournalOptions::in_dir(dir).dir;
    let mut hits = 0;
    for e in std::fs::read_dir(&journal).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let mut raw = std::fs::read(&path).unwrap();
        if let Some(at) = raw.windows(marker.len()).position(|w| w == marker) {
            raw[at] ^= 0x20;
            std::fs::write(&path, raw).unwrap();
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "{} holds the marker once", journal.display());
}

#[tokio::test]
async fn a_page_far_back_reads_nothing_newer_than_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..300u64 {
        let mut m = message(1, &["b"], 1000 + i);
        m.from = "a".into();
        m.recipients[0].peer = "a".into();
        m.body = format!(r#"{{"msg":"number-{i:03}"}}"#);
        store.append_message(m).await.unwrap();
        store
            .append_message(message(1, &["c"], 5000 + i))
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&store.history(1, "b", "a", Some(1100), 20).await.unwrap()),
        (1080..1100).rev().collect::<Vec<u64>>()
    );
    // A message further back than a page walks looking for its cursor
    // (CURSOR_WALK) is damaged: a page whose cursor lies beyond it must not
    // read it, nor anything else newer than its cursor.
    let damaged = 1299 - CURSOR_WALK as u64 - 21;
    damage_record_holding(
        dir.path(),
        format!("number-{:03}", damaged - 1000).as_bytes(),
    );
    assert_eq!(
        ids(&store.history(1, "b", "a", Some(1100), 20).await.unwrap()),
        (1080..1100).rev().collect::<Vec<u64>>()
    );
    assert_eq!(
        ids(&store.history(1, "b", "a", Some(1010), 20).await.unwrap()),
        (1000..1010).rev().collect::<Vec<u64>>()
    );
    // A cursor near the newest entry is met by walking from it.
    assert_eq!(
        ids(&store.history(1, "b", "a", Some(1290), 5).await.unwrap()),
        (1285..1290).rev().collect::<Vec<u64>>()
    );
    // The page that holds it reads it.
    assert!(store
        .history(1, "b", "a", Some(damaged + 5), 20)
        .await
        .is_err());
    // A cursor of another conversation: the ids below it, from the newest.
    assert_eq!(
        ids(&store.history(1, "b", "a", Some(5010), 20).await.unwrap()),
        (1280..1300).rev().collect::<Vec<u64>>()
    );
    store.close().await;
}

#[tokio::test]
async fn a_message_to_many_reads_back_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let names: Vec<String> = (0..600).map(|i| format!("user{i}")).collect();
    let to: Vec<&str> = names.iter().map(String::as_str).collect();
    let stored = store.append_message(message(1, &to, 5000)).await.unwrap();
    assert_eq!(stored.len(), 600);
    for (i, n) in names.iter().enumerate().step_by(97) {
        let inbox = store.inbox_after(1, n, 0, 10).await.unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(
            (inbox[0].msg_id, inbox[0].owner.as_str()),
            (5000 + i as u64, n.as_str())
        );
        assert_eq!(
            store
                .find_entry(1, 5000 + i as u64)
                .await
                .unwrap()
                .unwrap()
                .owner,
            *n
        );
    }
    store.close().await;
}

#[tokio::test]
async fn a_record_naming_a_recipient_twice_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let twice = message(1, &["a", "a"], 10);
    assert!(matches!(
        store.append_message(twice).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(
        store.append_message(message(1, &["a"], 20)).await.unwrap()[0].seq,
        1
    );
    store.close().await;
}

#[tokio::test]
async fn a_failed_write_fails_its_batch_and_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(small(dir.path(), 4096, 1 << 40)).unwrap();
    store.append_message(message(1, &["a"], 10)).await.unwrap();
    // The next segment cannot be put in place once the directory is gone
    // (removed once the next segment's preparation is over).
    let journal = JournalOptions::in_dir(dir.path()).dir;
    for _ in 0..200 {
        if journal.join("0000000001.seg.new").exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    std::fs::remove_dir_all(&journal).unwrap();
    let mut id = 11;
    let err = loop {
        match store.append_message(message(1, &["a"], id)).await {
            Ok(_) => id += 1,
            Err(e) => break e,
        }
        assert!(id < 1000, "the segment never filled");
    };
    assert!(matches!(err, StorageError::Failed(_)), "{err:?}");
    assert!(matches!(
        store.save_device_cursor(1, "a", "d", 1).await,
        Err(StorageError::Failed(_))
    ));
    // What was stored is still known (its files are gone with the
    // directory here, so only the index can be asked).
    assert_eq!(store.offline_count(1, "a").await.unwrap(), id - 10);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_written_after_a_failed_write_is_acknowledged() {
    // A write that fails leaves a hole where its batch should be (as a
    // failed fdatasync whose pages the kernel dropped does). Callers that
    // joined the next batch meanwhile must not be told their message is
    // stored: a crash would put it behind the hole, where replay never goes.
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(JournalStore::open(small(dir.path(), 1 << 20, 1 << 40)).unwrap());
    let mut acked = Vec::new();
    for id in 10..20u64 {
        store.append_message(message(1, &["a"], id)).await.unwrap();
        acked.push(id);
    }
    store.shared.fault.store(writer::FAULT_FAIL, SeqCst);
    let failing = {
        let store = store.clone();
        tokio::spawn(async move { store.append_message(message(1, &["a"], 20)).await })
    };
    // The commit thread has taken the fault: it is inside the failing write.
    while store.shared.fault.load(SeqCst) != 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let joined: Vec<_> = (0..20u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = 100 + i;
                (
                    id,
                    store
                        .append_message(message(1, &[&format!("b{i}")], id))
                        .await,
                )
            })
        })
        .collect();
    assert!(matches!(
        failing.await.unwrap(),
        Err(StorageError::Failed(_))
    ));
    for j in joined {
        let (id, answer) = j.await.unwrap();
        match answer {
            Ok(_) => acked.push(id),
            Err(StorageError::Failed(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }

    let image = crash_image(dir.path());
    let again = JournalStore::open(small(image.path(), 1 << 20, 1 << 40)).unwrap();
    let mut stored = ids(&again.inbox_after(1, "a", 0, 1000).await.unwrap());
    for i in 0..20 {
        stored.extend(ids(&again
            .inbox_after(1, &format!("b{i}"), 0, 10)
            .await
            .unwrap()));
    }
    for id in &acked {
        assert!(
            stored.contains(id),
            "message {id} was acknowledged but is not in the log"
        );
    }
    again.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_panicking_commit_thread_leaves_no_caller_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(small(dir.path(), 1 << 20, 1 << 40)).unwrap();
    store.append_message(message(1, &["a"], 10)).await.unwrap();
    store
        .shared
        .fault
        .store(writer::FAULT_PANIC, std::sync::atomic::Ordering::SeqCst);
    let within = std::time::Duration::from_secs(10);
    let first = tokio::time::timeout(within, store.append_message(message(1, &["a"], 11)))
        .await
        .expect("the caller of the panicking batch was left waiting");
    assert!(first.is_err(), "{first:?}");
    let later = tokio::time::timeout(within, store.append_message(message(1, &["a"], 12)))
        .await
        .expect("a later caller was left waiting");
    assert!(matches!(later, Err(StorageError::Failed(_))), "{later:?}");
    store.close().await;
}

#[test]
fn missing_parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    create_dir_durably(&nested.join("journal")).unwrap();
    assert!(nested.join("journal").is_dir());
    // Already there: nothing to do, no error.
    create_dir_durably(&nested.join("journal")).unwrap();
}

#[tokio::test]
async fn a_directory_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalOptions::in_dir(dir.path()).dir;
    std::fs::create_dir_all(&journal).unwrap();
    std::fs::write(journal.join("format"), "something else\n").unwrap();
    assert!(JournalStore::open(JournalOptions::in_dir(dir.path())).is_err());
    std::fs::remove_file(journal.join("format")).unwrap();
    std::fs::write(journal.join("0000000000.seg"), [0u8; 16]).unwrap();
    assert!(
        JournalStore::open(JournalOptions::in_dir(dir.path())).is_err(),
        "segments without their format file"
    );
}

#[tokio::test]
async fn a_log_keeps_the_segment_size_it_was_made_with() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_close(
        JournalStore::open(small(dir.path(), 8192, 1 << 40)).unwrap(),
        50,
    )
    .await;
    let store = JournalStore::open(small(dir.path(), 1 << 20, 1 << 40)).unwrap();
    assert_eq!(store.inbox_after(1, "a", 0, 100).await.unwrap().len(), 50);
    store.append_message(message(1, &["a"], 100)).await.unwrap();
    store.close().await;
    let size = std::fs::metadata(last_segment(dir.path())).unwrap().len();
    assert_eq!(size, 8192);
}

#[tokio::test]
async fn one_process_holds_a_journal_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::open(JournalOptions::in_dir(dir.path())).unwrap();
    let second = JournalStore::open(JournalOptions::in_dir(dir.path()));
    assert!(matches!(second, Err(StorageError::Invalid(ref why)) if why.contains("in use")));
    store.close().await;
    drop(store);
    JournalStore::open(JournalOptions::in_dir(dir.path()))
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn positions_and_links_continue_once_the_pending_side_forgets_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // More inboxes and conversations than the pending side keeps (64 in
    // tests), each written in batches of its own.
    let mut id = 1000;
    for round in 1..=3u64 {
        for u in 0..200 {
            let mut m = message(1, &[&format!("u{u}")], id);
            m.from = format!("s{}", u % 3);
            let stored = store.append_message(m).await.unwrap();
            assert_eq!(stored[0].seq, round, "u{u} in round {round}");
            id += 1;
        }
    }
    for u in [0, 77, 199] {
        let h = store
            .history(1, &format!("u{u}"), &format!("s{}", u % 3), None, 10)
            .await
            .unwrap();
        assert_eq!(h.len(), 3, "u{u}: the conversation's links are whole");
    }
    store.close().await;
}

#[test]
fn runs_of_entries_are_read_together_only_when_close() {
    use chatd_core::EntryKind::Incoming;
    let at = |offsets: &[u64]| {
        offsets
            .iter()
            .enumerate()
            .map(|(i, o)| (i as u64 + 1, EntryRef::new(*o, 0, Incoming)))
            .collect::<Vec<_>>()
    };
    let first = segments::FIRST_READ;
    assert_eq!(run_window(&[]), first);
    assert_eq!(run_window(&at(&[500])), first);
    assert_eq!(run_window(&at(&[0, 300, 600, 900])), 900 + first);
    assert_eq!(
        run_window(&at(&[0, 3_000_000])),
        first,
        "far apart: one read each"
    );
    let dense: Vec<u64> = (0..20_000).map(|i| i * 300).collect();
    assert_eq!(run_window(&at(&dense)), RUN_WINDOW);
}

/// Polls `fut` once; true if it is done.
fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx).is_ready()
}

#[tokio::test]
async fn callers_waiting_for_room_go_in_first_come_first_served() {
    // A send takes its message id before it waits for room; one that later
    // callers keep passing could fall behind every id the journal remembers
    // and be refused as a copy. Once any caller waits, newcomers queue.
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(JournalStore::open(small(dir.path(), 64 << 20, 1 << 40)).unwrap());
    let append = |msg: NewMessage| {
        let store = store.clone();
        tokio::spawn(async move { store.append_message(msg).await })
    };
    // The disk stalls in the write of a first message...
    store.shared.fault.store(writer::FAULT_STALL, SeqCst);
    let first = append(message(1, &["q"], 10));
    while store.shared.fault.load(SeqCst) != writer::STALLED {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ...while the pending batch fills past its bound.
    let mut fillers = Vec::new();
    let mut id = 100;
    while store.shared.pending().0 < writer::MAX_PENDING_BYTES {
        let mut big = message(1, &["filler"], id);
        big.body = "x".repeat(1 << 20);
        let before = store.shared.pending().0;
        fillers.push(append(big));
        while store.shared.pending().0 == before {
            tokio::task::yield_now().await;
        }
        id += 1;
    }
    let early = append(message(1, &["q"], 50_000));
    while store.shared.pending().1 != 1 {
        tokio::task::yield_now().await;
    }
    // One that gives up while queued leaves the queue.
    {
        let mut gone = std::pin::pin!(store.append_message(message(1, &["q"], 50_001)));
        assert!(!poll_once(gone.as_mut()));
        assert_eq!(store.shared.pending().1, 2);
    }
    assert_eq!(store.shared.pending().1, 1);
    // The disk comes back: the commit thread takes the full batch, and
    // there is room. This thread blocks meanwhile, so the early caller,
    // woken, has not run yet when a later one comes.
    store.shared.fault.store(0, SeqCst);
    while store.shared.pending().0 != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut late = std::pin::pin!(store.append_message(message(1, &["q"], 50_002)));
    assert!(!poll_once(late.as_mut()));
    let early = early.await.unwrap().unwrap();
    let late = late.await.unwrap();
    assert!(
        early[0].seq < late[0].seq,
        "the later caller went first: {early:?} {late:?}"
    );
    assert_eq!(store.shared.pending().1, 0);
    first.await.unwrap().unwrap();
    for f in fillers {
        f.await.unwrap().unwrap();
    }
    let inbox = ids(&store.inbox_after(1, "q", 0, 10).await.unwrap());
    assert_eq!(inbox, vec![10, 50_000, 50_002]);
    store.close().await;
}

#[tokio::test]
async fn a_segment_lost_under_the_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |d: &Path| small(d, 4096, 1 << 40);
    // Closing snapshots everything: the next open replays nothing.
    fill_and_close(JournalStore::open(opts(dir.path())).unwrap(), 300).await;
    let journal = |d: &Path| JournalOptions::in_dir(d).dir;
    assert!(journal(dir.path()).join("snapshot").exists());
    let segment = |d: &Path, n: u64| journal(d).join(format!("{n:010}.seg"));
    assert!(
        segment(dir.path(), 3).exists(),
        "the test needs several segments"
    );

    for lost in [1, last_segment_number(dir.path())] {
        let image = crash_image(dir.path());
        std::fs::remove_file(segment(image.path(), lost)).unwrap();
        match JournalStore::open(opts(image.path())) {
            Err(StorageError::Corrupt(why)) => {
                assert!(why.contains(&format!("{lost:010}.seg")), "{why}")
            }
            Err(e) => panic!("segment {lost}: {e:?}"),
            Ok(_) => panic!("opened without segment {lost}, whose messages it lists"),
        }
    }
    // Untouched, it opens with everything.
    let again = JournalStore::open(opts(dir.path())).unwrap();
    assert_eq!(again.offline_count(1, "a").await.unwrap(), 300);
    again.close().await;
}

fn last_segment_number(dir: &Path) -> u64 {
    let path = last_segment(dir);
    path.file_stem().unwrap().to_string_lossy().parse().unwrap()
}

/// Stores messages to `a` from id `*next` on until the log reaches `to`.
async fn write_until(store: &JournalStore, to: u64, next: &mut u64) {
    while store.shared.read_state().applied_to < to {
        store
            .append_message(message(1, &["a"], *next))
            .await
            .unwrap();
        *next += 1;
    }
}

#[tokio::test]
async fn a_failed_snapshot_is_tried_again_soon() {
    let dir = tempfile::tempdir().unwrap();
    let every = 64 << 10;
    let store = JournalStore::open(small(dir.path(), 1 << 20, every)).unwrap();
    let journal = JournalOptions::in_dir(dir.path()).dir;
    let snapshot = journal.join("snapshot");
    // A directory where the snapshot's temporary file goes: saving fails.
    let blocker = journal.join("snapshot.new");
    std::fs::create_dir(&blocker).unwrap();
    let mut id = 10;
    write_until(&store, every + 1024, &mut id).await;
    // The commits after the failed try see it fail.
    write_until(&store, every + 8192, &mut id).await;
    assert!(!snapshot.exists());
    std::fs::remove_dir(&blocker).unwrap();
    // The next try comes within a quarter of the interval, not a whole one.
    write_until(&store, every + every / 4, &mut id).await;
    for _ in 0..250 {
        if snapshot.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(snapshot.exists(), "no second try within a quarter interval");
    store.close().await;
}

#[tokio::test]
async fn closing_after_a_failed_snapshot_writes_one() {
    let dir = tempfile::tempdir().unwrap();
    let every = 16 << 10;
    let store = JournalStore::open(small(dir.path(), 1 << 20, every)).unwrap();
    let journal = JournalOptions::in_dir(dir.path()).dir;
    let blocker = journal.join("snapshot.new");
    std::fs::create_dir(&blocker).unwrap();
    // The last write starts a snapshot, which fails; nothing is written after.
    let mut id = 10;
    write_until(&store, every, &mut id).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    std::fs::remove_dir(&blocker).unwrap();
    store.close().await;
    let taken = snapshot::load(&journal)
        .unwrap()
        .expect("no snapshot at close");
    assert_eq!(taken.applied_to, store.shared.read_state().applied_to);
}
