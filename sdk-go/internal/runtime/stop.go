package runtime

import "net/http"

// StopWriter is the http.ResponseWriter a request filter answers with. Writing a status, a body
// or a header stops the chain: the gateway answers the client with it and does not contact the
// upstream. A header name mapped to an empty slice is sent without value (it removes the header).
type StopWriter struct {
	header  http.Header
	ordered Fields
	status  int
	body    []byte
	wrote   bool
}

func (w *StopWriter) reset() {
	clear(w.header)
	w.ordered.reset(true, nil)
	w.status, w.body, w.wrote = 0, trim(w.body), false
}

// trim empties a reused buffer, dropping it when a large body made it big.
func trim(b []byte) []byte {
	if cap(b) > keepReadBuffer {
		return nil
	}
	return b[:0]
}

// OrderedHeader returns headers of the answer kept in order, sent after Header()'s: a value sets
// the header (later ones add), Del sends an entry without value (removes it).
func (w *StopWriter) OrderedHeader() *Fields {
	if !w.ordered.loaded {
		w.ordered.reset(true, nil)
	}
	return &w.ordered
}

// Header returns the headers of the answer.
func (w *StopWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// Write appends to the body of the answer.
func (w *StopWriter) Write(p []byte) (int, error) {
	w.body = append(w.body, p...)
	w.wrote = true
	return len(p), nil
}

// WriteHeader sets the status of the answer (the first call wins, as in net/http).
func (w *StopWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.wrote = true
}

// Stopped tells whether the plugin answered.
func (w *StopWriter) Stopped() bool { return w.wrote || len(w.header) > 0 || w.ordered.Changed() }

// Status returns the status written, 0 when none (the gateway then answers 200).
func (w *StopWriter) Status() int { return w.status }

// Body returns the body written.
func (w *StopWriter) Body() []byte { return w.body }
