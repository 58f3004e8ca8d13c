//! Smoke test: `chatd-bench --quick --scenario send --json` against the
//! chatd binary of the same build (target/debug/chatd next to the bench)
//! finishes, reports sane figures, and loses no acknowledged message.

use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The chatd binary next to chatd-bench; built if this test runs alone
/// (`cargo test -p chatd-bench` does not build other packages' binaries).
fn chatd_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_chatd-bench"));
    let dir = bench.parent().expect("the bench has a directory");
    let chatd = dir.join(format!("chatd{}", std::env::consts::EXE_SUFFIX));
    if !chatd.is_file() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "chatd", "--bin", "chatd"]);
        if let Some(target_dir) = dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building chatd failed");
    }
    assert!(chatd.is_file(), "no chatd at {}", chatd.display());
    chatd
}

#[test]
fn quick_send_reports_sane_figures_and_loses_nothing() {
    let chatd = chatd_binary();
    let started = Instant::now();
    // The bench's data directories go here, to see that none is left.
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd-bench"))
        .args([
            "--quick",
            "--scenario",
            "send,connections",
            "--json",
            "--chatd",
        ])
        .arg(&chatd)
        .env("TMPDIR", tmp.path())
        // What scripts/bench-vm.sh passes to a bench run outside the tree.
        .env("CHATD_BENCH_COMMIT", "0123456789ab")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatd-bench starts");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let reader = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let errors = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    // A guard, far above the ~15 s the run takes.
    let deadline = started + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chatd-bench --quick did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().expect("stdout reader");
    let err = errors.join().expect("stderr reader");
    assert!(
        status.success(),
        "chatd-bench failed ({status}):\n{out}\n{err}"
    );
    let r: Value = serde_json::from_str(&out).expect("--json prints JSON");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("the temporary directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "data directories left behind: {left:?}");

    assert_eq!(r["failures"], serde_json::json!([]));
    assert!(r["meta"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(r["meta"]["params"]["quick"], true);
    assert_eq!(r["meta"]["commit"], "0123456789ab");

    // The disk's pace, before the first scenario and after the last.
    let disk = r["disk"].as_array().expect("disk probes");
    let when: Vec<_> = disk.iter().map(|d| d["when"].as_str().unwrap()).collect();
    assert_eq!(when, ["before", "after"], "{disk:?}");
    for d in disk {
        assert!(d["latency"]["count"].as_u64().unwrap() > 0, "{d}");
        assert!(d["latency"]["p50_us"].as_u64().unwrap() > 0, "{d}");
        assert_eq!(d["interval_us"], 1000, "{d}");
        assert_eq!(d["dir"].as_str(), tmp.path().to_str(), "{d}");
    }

    let ceiling = r["ceiling"].as_array().expect("ceiling cells");
    assert!(!ceiling.is_empty());
    for c in ceiling {
        assert!(c["rps"].as_f64().unwrap() > 0.0, "ceiling: {c}");
        assert_eq!(c["error_count"], 0, "ceiling: {c}");
    }

    let send = r["send"].as_array().expect("send cells");
    // quick: 1 and 100 recipients, offline and online.
    assert_eq!(send.len(), 4, "{send:?}");
    for c in send {
        let ok = c["ok"].as_u64().unwrap();
        let lat = &c["latency"];
        assert!(ok > 0, "no request succeeded: {c}");
        assert!(c["rps"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["ratio_rps"].as_f64().unwrap() > 0.0, "{c}");
        assert!(lat["p50_us"].as_u64().unwrap() > 0, "{c}");
        assert!(lat["p99_us"].as_u64() >= lat["p50_us"].as_u64(), "{c}");
        assert!(lat["p999_us"].as_u64() >= lat["p99_us"].as_u64(), "{c}");
        assert_eq!(c["error_count"], 0, "{c}");
        let acked = c["acked_msgs"].as_u64().unwrap();
        let stored = c["stored_msgs"].as_u64().unwrap();
        let r = c["recipients"].as_u64().unwrap();
        assert!(acked >= ok * r, "every 200 counts its recipients: {c}");
        assert_eq!(c["lost"], 0, "acknowledged messages were lost: {c}");
        assert!(stored >= acked, "{c}");
    }

    // Idle clients: all held, none lost, memory read from the server.
    let conn = &r["connections"];
    assert!(conn["attempted"].as_u64().unwrap() > 0, "{conn}");
    assert_eq!(conn["connected"], conn["attempted"], "{conn}");
    assert_eq!(conn["held"], conn["connected"], "{conn}");
    assert_eq!(conn["dropped_by"], serde_json::json!({}), "{conn}");
    assert!(
        conn["rss_kb"].as_u64() > conn["rss_base_kb"].as_u64(),
        "{conn}"
    );

    let lost = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Nothing acknowledged is lost")
        .expect("the lost-message check");
    assert_eq!(lost["met"], true);
}
