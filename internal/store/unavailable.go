package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrUnavailable is matched (errors.Is) by every error that means the
// store could not be reached: not opened yet, a timeout, a refused or
// broken connection, or a breaker that knows the store is down (see
// Deferred). Callers answer 503, as for any other failure of the store.
var ErrUnavailable = errors.New("the store is unavailable")

// UnavailableError is the error of a call that could not reach the store
// (Deferred returns it). It matches ErrUnavailable and its cause.
type UnavailableError struct {
	// Err is the cause: a timeout, a connection error, the open breaker
	// (breaker.ErrOpen) or the store not being open yet.
	Err error
	// RetryAfter is when a client should try again (the breaker's hint).
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string { return "store unavailable: " + e.Err.Error() }

// Unwrap returns ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// UnreachableTeller is implemented by a backend that knows errors of its
// own that mean it cannot be reached (Redis: a pool timeout, LOADING,
// MASTERDOWN), besides those Deferred recognises in any backend.
type UnreachableTeller interface {
	Unreachable(err error) bool
}

// unreachable reports whether err, from a call to s, means that the store
// could not be reached, rather than that it answered: a timeout, a
// refused, reset or closed connection, ErrUnavailable, or what s says.
// The store's answers (ErrNotFound, ErrLabelTaken...) and errors of the
// caller's own functions (UpdateUser's fn) are not.
func unreachable(s Store, err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var nd *NotDurableError
	switch {
	case errors.As(err, &nd):
		return false // the primary answered; its replicas did not
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	t, ok := s.(UnreachableTeller)
	return ok && t.Unreachable(err)
}

// NotDurableError is the error of a write that the store applied but
// could not make durable in time: a Redis primary took it, but fewer
// replicas than required acknowledged it (WAIT), so a failover could
// still undo it. It matches ErrUnavailable (the caller answers 503 and
// the client retries: every write that waits is idempotent or fails
// cleanly when repeated), but it does not count as the store being
// unreachable (the breaker ignores it): the primary answered.
type NotDurableError struct {
	// Op is the write, e.g. "delete token".
	Op string
	// Acked and Wanted are the replicas that acknowledged the write and
	// the replicas required.
	Acked, Wanted int
	// Timeout is how long the store waited for them.
	Timeout time.Duration
	// Err is why the wait itself failed, if it did (nil: it timed out).
	Err error
}

func (e *NotDurableError) Error() string {
	msg := fmt.Sprintf("%s: applied on the primary but not durable: %d of %d replicas acknowledged it within %v, so a failover may undo it; retry",
		e.Op, e.Acked, e.Wanted, e.Timeout)
	if e.Err != nil {
		msg += " (waiting failed: " + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap returns ErrUnavailable and the cause of a failed wait.
func (e *NotDurableError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.Err}
}
