// Package frame reads and writes the runner protocol's frames: a type byte, a 24-bit big-endian
// payload length, then the payload (one finished FlatBuffers buffer).
package frame

import (
	"errors"
	"fmt"
	"io"
)

// Message types.
const (
	TypeError     byte = 0
	TypePrepare   byte = 1
	TypeHTTPReq   byte = 2
	TypeExtraInfo byte = 3
	TypeHTTPResp  byte = 4
)

// HeaderLen is the size of a frame header.
const HeaderLen = 4

// MaxPayload is the largest payload a 24-bit length can declare.
const MaxPayload = 1<<24 - 1

// ErrTooLarge is returned when a payload does not fit in a frame.
var ErrTooLarge = errors.New("frame payload longer than 16777215 bytes")

// PutHeader writes the header of a frame of type ty with a payload of n bytes into h.
func PutHeader(h []byte, ty byte, n int) error {
	if n < 0 || n > MaxPayload {
		return fmt.Errorf("%w: %d", ErrTooLarge, n)
	}
	h[0] = ty
	h[1] = byte(n >> 16)
	h[2] = byte(n >> 8)
	h[3] = byte(n)
	return nil
}

// ParseHeader returns the type and the declared payload length of a header.
func ParseHeader(h []byte) (ty byte, n int) {
	return h[0], int(h[1])<<16 | int(h[2])<<8 | int(h[3])
}

// Reader reads frames from a stream into a reusable buffer.
type Reader struct {
	R      io.Reader
	header [HeaderLen]byte
	buf    []byte
	// keep is the largest buffer kept between frames; larger payloads get a buffer of their own
	// that is dropped after use, so one 16 MiB body does not pin 16 MiB per connection.
	keep int
	// detached: the last payload has a buffer of its own, which the next frame will not reuse
	detached bool
}

// Detached tells whether the last payload's buffer is the caller's to keep (the next frame will
// not overwrite it).
func (r *Reader) Detached() bool { return r.detached }

// NewReader returns a Reader on r that keeps a buffer of up to keep bytes between frames.
func NewReader(r io.Reader, keep int) *Reader {
	return &Reader{R: r, keep: keep}
}

// Next reads one frame. The payload is valid until the next call to Next.
// It returns io.EOF when the stream ends cleanly before a frame and io.ErrUnexpectedEOF when it
// ends inside one.
func (r *Reader) Next() (ty byte, payload []byte, err error) {
	if _, err := io.ReadFull(r.R, r.header[:]); err != nil {
		return 0, nil, err
	}
	ty, n := ParseHeader(r.header[:])
	var buf []byte
	r.detached = false
	if n <= cap(r.buf) {
		buf = r.buf[:n]
	} else {
		buf = make([]byte, n)
		if n <= r.keep {
			r.buf = buf
		} else {
			r.detached = true
		}
	}
	if _, err := io.ReadFull(r.R, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return ty, buf, nil
}
