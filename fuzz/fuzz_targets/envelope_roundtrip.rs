//! envelope_roundtrip: per-version envelope encryption (`seal_value` / `open_value`).
//!
//! Properties (PBT):
//! - round trip: `open(seal(p))` with the same key, key id, term, ARN and version id is `p`;
//!   the ciphertext never contains the plaintext, and sealing twice never gives the same bytes;
//! - binding: opening with any other KEK, key id, term, secret ARN or version id fails;
//! - integrity: flipping any bit of the ciphertext or of the wrapped data key, truncating or
//!   extending either, or swapping the two, fails;
//! - `open_value` on arbitrary bytes never panics.
//!
//! Precondition: the key id and the ARN contain no NUL. The associated data joins its parts
//! with NUL (`...\0{key_id}\0{term}\0{arn}\0{version_id}`), so with a NUL inside a part two
//! different tuples could share one AAD. The server only ever uses UUID key ids and ARNs of
//! validated names (`[A-Za-z0-9/_+=.@-]`), so the property is checked on that domain; the
//! version id, the last part, may hold anything.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use strongroom::crypto::envelope::{open_value, seal_value, SealedValue};
use strongroom::crypto::Key256;

#[derive(Debug, Arbitrary)]
enum Change {
    Kek([u8; 32]),
    KeyId(String),
    Term(i32),
    Arn(String),
    Version(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    kek: [u8; 32],
    key_id: String,
    term: i32,
    arn: String,
    version: String,
    plaintext: Vec<u8>,
    changes: Vec<Change>,
    flip_at: u16,
    flip_mask: u8,
    cut_at: u16,
    junk_ciphertext: Vec<u8>,
    junk_wrapped: Vec<u8>,
}

fn no_nul(s: &str) -> String {
    s.replace('\0', "")
}

fn flipped(v: &[u8], at: u16, mask: u8) -> Vec<u8> {
    let mut v = v.to_vec();
    let i = usize::from(at) % v.len();
    v[i] ^= if mask == 0 { 1 } else { mask };
    v
}

fuzz_target!(|inp: Input| {
    let kek = Key256::from_slice(&inp.kek).expect("32 bytes");
    let key_id = no_nul(&inp.key_id);
    let arn = no_nul(&inp.arn);
    let (term, version) = (inp.term, inp.version.as_str());
    let p = inp.plaintext.as_slice();

    let sealed = seal_value(&kek, &key_id, term, &arn, version, p).expect("seal");
    let opened = open_value(&kek, &key_id, term, &arn, version, &sealed).expect("round trip");
    assert_eq!(opened.as_slice(), p);
    if p.len() >= 8 {
        assert!(
            !sealed.ciphertext.windows(p.len()).any(|w| w == p),
            "plaintext visible"
        );
    }
    let again = seal_value(&kek, &key_id, term, &arn, version, p).expect("seal");
    assert_ne!(again, sealed, "sealing is not randomised");

    // Binding to key, key id, term, ARN and version id.
    for change in &inp.changes {
        let (mut k, mut kid, mut t, mut a, mut v) = (
            kek.clone(),
            key_id.clone(),
            term,
            arn.clone(),
            version.to_owned(),
        );
        match change {
            Change::Kek(b) if *b != inp.kek => k = Key256::from_slice(b).expect("32 bytes"),
            Change::KeyId(s) if no_nul(s) != key_id => kid = no_nul(s),
            Change::Term(x) if *x != term => t = *x,
            Change::Arn(s) if no_nul(s) != arn => a = no_nul(s),
            Change::Version(s) if s != version => v = s.clone(),
            _ => continue,
        }
        assert!(
            open_value(&k, &kid, t, &a, &v, &sealed).is_err(),
            "opened with a different {change:?}"
        );
    }

    // Integrity of both blobs.
    let open = |s: &SealedValue| open_value(&kek, &key_id, term, &arn, version, s);
    let (ct, wd) = (&sealed.ciphertext, &sealed.wrapped_dek);
    let variants = [
        SealedValue {
            ciphertext: flipped(ct, inp.flip_at, inp.flip_mask),
            wrapped_dek: wd.clone(),
        },
        SealedValue {
            ciphertext: ct.clone(),
            wrapped_dek: flipped(wd, inp.flip_at, inp.flip_mask),
        },
        SealedValue {
            ciphertext: ct[..usize::from(inp.cut_at) % ct.len()].to_vec(),
            wrapped_dek: wd.clone(),
        },
        SealedValue {
            ciphertext: ct.clone(),
            wrapped_dek: wd[..usize::from(inp.cut_at) % wd.len()].to_vec(),
        },
        SealedValue {
            ciphertext: [ct.as_slice(), &[inp.flip_mask]].concat(),
            wrapped_dek: wd.clone(),
        },
        SealedValue {
            ciphertext: ct.clone(),
            wrapped_dek: [wd.as_slice(), &[inp.flip_mask]].concat(),
        },
        SealedValue {
            ciphertext: wd.clone(),
            wrapped_dek: ct.clone(),
        },
        SealedValue {
            ciphertext: again.ciphertext.clone(),
            wrapped_dek: wd.clone(),
        },
        SealedValue {
            ciphertext: ct.clone(),
            wrapped_dek: again.wrapped_dek.clone(),
        },
    ];
    for (i, s) in variants.iter().enumerate() {
        assert!(open(s).is_err(), "tampered blob #{i} opened");
    }

    // Arbitrary bytes never panic (and, without the key, never open).
    let junk = SealedValue {
        ciphertext: inp.junk_ciphertext.clone(),
        wrapped_dek: inp.junk_wrapped.clone(),
    };
    assert!(open(&junk).is_err(), "junk opened");
});
