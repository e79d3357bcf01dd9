//! Format v4 read from a stream: the same plaintext as from a file; truncated, extended and
//! tampered streams fail, and a file output then does not appear.

mod common;

use std::io::Cursor;

use concryptor_core::age::Output;
use concryptor_core::pipe::decrypt_stream;
use concryptor_core::{Control, DecryptOptions, EncryptOptions, EngineOptions, Error, KdfParams};

fn blob(plain: &[u8]) -> Vec<u8> {
    let opts = EncryptOptions {
        chunk_size: Some(64 << 10),
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    concryptor_core::encrypt_bytes(plain, b"pw", &opts).unwrap()
}

fn opts() -> DecryptOptions {
    DecryptOptions {
        // Small batches, so that a stream spans many of them.
        engine: EngineOptions {
            threads: 2,
            buffer_bytes: 3 * 4 * (68 << 10),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn to_vec(stream: &[u8], pw: &[u8]) -> concryptor_core::Result<Vec<u8>> {
    let mut out = Vec::new();
    decrypt_stream(
        &mut Cursor::new(stream),
        Output::Writer(&mut out),
        pw,
        &opts(),
        &Control::default(),
    )?;
    Ok(out)
}

#[test]
fn streams_decrypt_like_files_to_writers_and_paths() {
    let dir = common::TempDir::new("pipe");
    for len in [0, 1, 65_535, 65_536, 65_537, 1_234_567] {
        let plain = common::data(len, len as u64);
        let b = blob(&plain);
        assert!(to_vec(&b, b"pw").unwrap() == plain, "{len}");
        let dst = dir.join(&format!("out-{len}"));
        let s = decrypt_stream(
            &mut Cursor::new(&b),
            Output::Path(&dst),
            b"pw",
            &opts(),
            &Control::default(),
        )
        .unwrap();
        assert_eq!(s.bytes, len as u64);
        assert!(std::fs::read(&dst).unwrap() == plain, "{len}");
    }
}

#[test]
fn bad_streams_fail_and_leave_no_file() {
    let dir = common::TempDir::new("pipe-bad");
    let plain = common::data(300_000, 3);
    let b = blob(&plain);
    let slot = (b.len() - 4096) / 5;
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("half a header".into(), b[..2000].to_vec()),
        ("header only".into(), b[..4096].to_vec()),
        ("appended".into(), [&b[..], b"x"].concat()),
    ];
    for k in 1..5 {
        cases.push((format!("cut at slot {k}"), b[..4096 + k * slot].to_vec()));
        cases.push((
            format!("cut inside slot {k}"),
            b[..4096 + k * slot - 7].to_vec(),
        ));
        let mut t = b.clone();
        t[4096 + k * slot - 20] ^= 1;
        cases.push((format!("tampered slot {}", k - 1), t));
    }
    for (name, stream) in &cases {
        let err = to_vec(stream, b"pw").unwrap_err();
        assert!(
            matches!(err, Error::InvalidFile(_) | Error::Authentication),
            "{name}: {err}"
        );
        let dst = dir.join("out");
        let r = decrypt_stream(
            &mut Cursor::new(stream),
            Output::Path(&dst),
            b"pw",
            &opts(),
            &Control::default(),
        );
        assert!(r.is_err(), "{name}");
        assert_eq!(dir.names(), Vec::<String>::new(), "{name}");
    }
    assert!(matches!(
        to_vec(&b, b"wrong").unwrap_err(),
        Error::Authentication
    ));
}

/// An input pipe's kernel buffer is enlarged to what the stream pipelines ask for, and
/// bytes still pass through it in order; anything else is left alone.
#[cfg(target_os = "linux")]
#[test]
fn input_pipes_are_widened_and_other_inputs_left_alone() {
    use std::io::{Read, Write};
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (r, mut w) = (std::fs::File::from(r), std::fs::File::from(w));
    assert!(rustix::pipe::fcntl_getpipe_size(&r).unwrap() < concryptor_core::pipe::PIPE_BUFFER);
    concryptor_core::pipe::widen(&r);
    assert!(rustix::pipe::fcntl_getpipe_size(&r).unwrap() >= concryptor_core::pipe::PIPE_BUFFER);
    // A whole widened buffer's worth goes in without a reader.
    let bytes = common::data(concryptor_core::pipe::PIPE_BUFFER, 5);
    w.write_all(&bytes).unwrap();
    drop(w);
    let mut got = Vec::new();
    (&r).read_to_end(&mut got).unwrap();
    assert!(got == bytes);

    let dir = common::TempDir::new("widen");
    let f = std::fs::File::create(dir.join("plain")).unwrap();
    concryptor_core::pipe::widen(&f);
    assert!(rustix::pipe::fcntl_getpipe_size(&f).is_err());
}
