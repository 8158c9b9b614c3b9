//! The escrow packet parser ([`Packet::parse`]) and its authenticity: raw bytes must parse or
//! be refused without a panic, a parsed packet's recipients and lengths are in range and every
//! cut of it is refused; and any change to a genuine packet (sealed here to a key of this
//! process) is refused by the parser or by [`Packet::open`], while the unchanged packet opens
//! to the very header that was sealed.

use std::sync::OnceLock;

use rsa::PrivateKey as RsaPrivateKey;
use tcvault::escrow::client::packet::{
    self, MAX_RECIPIENTS, OLDEST_PACKET_VERSION, PACKET_VERSION, Packet, PacketError,
};
use tcvault::header::format::Header;
use tcvault::header::kdf::Family;
use tcvault::header::layout::Slot;
use tcvault::header::unlock::{Candidate, unlock};

use super::common::{Input, PASSWORD, SCHEMES, craft, creds, opts};

/// A key pair and a packet sealed to it, made once per process. The key is small (1,024
/// bits) to keep fuzzing fast; the packet format does not depend on the size.
struct Sealed {
    key: RsaPrivateKey,
    header: Header,
    bytes: Vec<u8>,
}

fn sealed() -> &'static Sealed {
    static S: OnceLock<Sealed> = OnceLock::new();
    S.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut getrandom::SysRng, 1024).expect("RSA key");
        let c = craft(&mut Input::new(&[0, 0, 0, 0]));
        let cand = Candidate {
            slot: Slot::Normal,
            bytes: c.bytes[..512].try_into().expect("512 bytes"),
        };
        let u = unlock(
            &[cand],
            &creds(PASSWORD, 0),
            &opts(Family::TrueCrypt, SCHEMES[0]),
        )
        .expect("the crafted header opens");
        let (_, bytes) =
            packet::encrypt_to(&u, "fuzz", &[key.to_public_key()], None).expect("seal");
        Sealed {
            key,
            header: u.header,
            bytes,
        }
    })
}

/// A well-formed packet of `body` length made by hand (not sealed): magic, version, `metadata`,
/// one recipient, nonce, and `body` bytes of "ciphertext".
pub fn hand_made(metadata: &[u8], wrapped: &[u8], body: usize) -> Vec<u8> {
    let mut out = packet::MAGIC.to_vec();
    out.extend_from_slice(&PACKET_VERSION.to_be_bytes());
    out.extend_from_slice(&(metadata.len() as u32).to_be_bytes());
    out.extend_from_slice(metadata);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[7u8; 32]);
    out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(wrapped);
    out.extend_from_slice(&[9u8; 12]);
    out.extend(std::iter::repeat_n(0xC3, body));
    out
}

/// First byte even: the rest is a packet as it is. Odd: the rest is a list of changes
/// (two-byte offset, xor byte; a zero offset high bit set cuts the packet there) made to the
/// genuine sealed packet.
pub fn check(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.byte().is_multiple_of(2) {
        raw(inp.rest());
    } else {
        edited(inp.rest());
    }
}

fn raw(bytes: &[u8]) {
    let Ok(p) = Packet::parse(bytes) else {
        return;
    };
    let n = p.recipients().len();
    assert!((1..=MAX_RECIPIENTS).contains(&n));
    assert!((OLDEST_PACKET_VERSION..=PACKET_VERSION).contains(&p.metadata.packet_version));
    for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
        assert!(Packet::parse(&bytes[..cut]).is_err(), "a cut packet parsed");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(
        Packet::parse(&longer).is_err(),
        "a packet with a byte more parsed"
    );
    let s = sealed();
    match p.open(&s.key) {
        Ok(h) => {
            assert!(bytes == s.bytes, "a packet nobody sealed opened");
            assert_eq!(h, s.header);
        }
        Err(PacketError::NotForThisKey { .. } | PacketError::Decrypt) => {}
        Err(PacketError::Malformed(m)) => panic!("parsed, then malformed on open: {m}"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn edited(edits: &[u8]) {
    let s = sealed();
    let mut b = s.bytes.clone();
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([e[0], e[1]]));
        if at & 0x8000 != 0 {
            b.truncate(at & 0x7FFF);
        } else if !b.is_empty() {
            let i = at % b.len();
            b[i] ^= e[2];
        }
    }
    let p = match Packet::parse(&b) {
        Ok(p) => p,
        Err(_) => {
            assert!(b != s.bytes, "the genuine packet does not parse");
            return;
        }
    };
    match p.open(&s.key) {
        Ok(h) => {
            assert!(b == s.bytes, "a changed packet opened");
            assert_eq!(h, s.header, "opened to another header");
        }
        Err(e) => assert!(b != s.bytes, "the genuine packet does not open: {e}"),
    }
}
