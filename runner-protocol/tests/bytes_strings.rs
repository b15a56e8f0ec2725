//! Strings are written NUL-terminated and read as bytes, so non-UTF-8 values survive a verified read.

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use runner_protocol::generated::a6::a6 as wire;
use wire::httpreq_call::{Req, ReqArgs};

#[test]
fn non_utf8_header_values_are_verified_and_read_back() {
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_byte_string(b"x-raw");
    let value = fbb.create_byte_string(b"caf\xe9 \xff");
    let entry = wire::TextEntry::create(
        &mut fbb,
        &wire::TextEntryArgs {
            name: Some(WIPOffset::new(name.value())),
            value: Some(WIPOffset::new(value.value())),
        },
    );
    let headers = fbb.create_vector(&[entry]);
    let path = fbb.create_byte_string(b"/p\x80th");
    let req = Req::create(
        &mut fbb,
        &ReqArgs {
            id: 7,
            path: Some(WIPOffset::new(path.value())),
            headers: Some(headers),
            method: wire::Method::POST,
            ..Default::default()
        },
    );
    fbb.finish_minimal(req);
    let buf = fbb.finished_data();

    let read = flatbuffers::root::<Req>(buf).expect("verifies despite non-UTF-8 bytes");
    assert_eq!(read.id(), 7);
    assert_eq!(read.method(), wire::Method::POST);
    assert_eq!(read.path().map(|p| p.bytes()), Some(&b"/p\x80th"[..]));
    let h = read.headers().expect("headers").get(0);
    assert_eq!(h.name().map(|n| n.bytes()), Some(&b"x-raw"[..]));
    assert_eq!(h.value().map(|v| v.bytes()), Some(&b"caf\xe9 \xff"[..]));
    // The string's NUL terminator is on the wire, right after the value's bytes.
    let at = buf
        .windows(6)
        .position(|w| w == b"caf\xe9 \xff")
        .expect("value bytes present");
    assert_eq!(buf[at + 6], 0);
}
