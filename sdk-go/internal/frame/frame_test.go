package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestHeader(t *testing.T) {
	h := make([]byte, HeaderLen)
	for _, n := range []int{0, 1, 255, 256, 65536, MaxPayload} {
		if err := PutHeader(h, TypeHTTPReq, n); err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if ty, got := ParseHeader(h); ty != TypeHTTPReq || got != n {
			t.Errorf("%d: read back %d %d", n, ty, got)
		}
	}
	if !bytes.Equal(h, []byte{2, 0xff, 0xff, 0xff}) {
		t.Errorf("max header %x", h)
	}
	for _, n := range []int{MaxPayload + 1, 1 << 24, -1} {
		if err := PutHeader(h, 2, n); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%d: %v, want ErrTooLarge (never a truncated length)", n, err)
		}
	}
}

func TestReader(t *testing.T) {
	var stream bytes.Buffer
	stream.Write([]byte{1, 0, 0, 3, 'a', 'b', 'c'})
	stream.Write([]byte{2, 0, 0, 0})
	stream.Write([]byte{4, 0, 0, 9, 'x'}) // cut short
	r := NewReader(&stream, 16)
	if ty, p, err := r.Next(); err != nil || ty != 1 || string(p) != "abc" {
		t.Fatalf("%d %q %v", ty, p, err)
	}
	if ty, p, err := r.Next(); err != nil || ty != 2 || len(p) != 0 {
		t.Fatalf("%d %q %v", ty, p, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short payload: %v", err)
	}
	if _, _, err := NewReader(bytes.NewReader(nil), 16).Next(); err != io.EOF {
		t.Errorf("clean end: %v", err)
	}
	if _, _, err := NewReader(bytes.NewReader([]byte{1, 0}), 16).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short header: %v", err)
	}
}

func TestReaderKeepsSmallBuffers(t *testing.T) {
	big := append([]byte{3, 0, 0, 32}, make([]byte, 32)...)
	small := []byte{3, 0, 0, 2, 1, 2}
	r := NewReader(bytes.NewReader(append(append(append([]byte{}, small...), big...), small...)), 16)
	r.Next()
	kept := cap(r.buf)
	if r.Detached() {
		t.Errorf("a kept buffer reported detached")
	}
	r.Next()
	if !r.Detached() {
		t.Errorf("a payload above keep not reported detached")
	}
	if cap(r.buf) != kept {
		t.Errorf("a payload above keep replaced the kept buffer (%d -> %d)", kept, cap(r.buf))
	}
	if _, p, _ := r.Next(); !bytes.Equal(p, []byte{1, 2}) {
		t.Errorf("payload %v", p)
	}
}
