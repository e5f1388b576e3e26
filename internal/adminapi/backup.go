package adminapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/backup"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/store"
)

// OperatorError is an error whose whole text is for the operator (the
// admin endpoint is theirs alone): it is answered with Status and Err's
// message as it is, not reduced to a generic description as a 5xx of a
// public route is. An import that stopped part-way says this way what it
// wrote.
type OperatorError struct {
	Status int
	Err    error
}

func (e *OperatorError) Error() string { return e.Err.Error() }
func (e *OperatorError) Unwrap() error { return e.Err }

// StreamError is a failure after a streamed answer has begun (its status
// and part of its body are sent): the caller cannot answer an error any
// more and must cut the connection, so that the client sees a truncated
// answer rather than a complete-looking one.
type StreamError struct{ Err error }

func (e *StreamError) Error() string { return "answer cut short: " + e.Err.Error() }
func (e *StreamError) Unwrap() error { return e.Err }

// storeExport serves GET /tokengate/store/export: the whole store as one
// JSON document (package backup), streamed.
func (a *API) storeExport(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	// Caddy's admin server gives a request 10 s to be read, and when that
	// deadline passes the request's context is cancelled even while the
	// answer is still being written. An export of a large store takes
	// longer: it ends when it is done or when the client stops reading.
	ctx := context.WithoutCancel(r.Context())
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	at := now()
	e, err := backup.Begin(ctx, a.Backup, at)
	if err != nil {
		return apierr.FromStore(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="tokengate-export-`+at.UTC().Format("20060102T150405Z")+`.json"`)
	w.WriteHeader(http.StatusOK)
	if _, err := e.WriteTo(ctx, w); err != nil {
		return &StreamError{Err: err}
	}
	return nil
}

// storeImport serves POST /tokengate/store/import: an export (at most
// backup.MaxImportBytes) is decoded and validated whole (400 naming the
// first problem), the store must be empty (409 naming what it holds), and
// then it is written. A failure part-way is answered with what was
// written and how to retry.
func (a *API) storeImport(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apierr.ErrUnsupportedMedia
	}
	doc, err := backup.Decode(http.MaxBytesReader(w, r.Body, backup.MaxImportBytes))
	if err != nil {
		return err
	}
	if err := doc.Validate(); err != nil {
		return err
	}
	// Once validated, the import runs to its end even if the client goes
	// away or the admin server's read deadline cancels the request (see
	// storeExport): stopping half-way would leave a partial store.
	ctx := context.WithoutCancel(r.Context())
	if err := backup.CheckEmpty(ctx, a.Backup); err != nil {
		return err
	}
	n, err := backup.Import(ctx, a.Backup, doc)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, backup.ErrConcurrentWrite) || errors.Is(err, store.ErrUserExists) || errors.Is(err, store.ErrClientExists) {
			status = http.StatusConflict
		}
		return &OperatorError{Status: status, Err: err}
	}
	jsonbody.Write(w, http.StatusOK, map[string]any{"imported": n})
	return nil
}
