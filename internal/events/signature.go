package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Tokengate-Signature"
	// IDHeader carries the event's id (the same as the body's "id").
	IDHeader = "Tokengate-Event-Id"
	// TypeHeader carries the event's type.
	TypeHeader = "Tokengate-Event-Type"
)

// MinSecretLength is the shortest webhook secret accepted, in bytes.
const MinSecretLength = 32

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock in Verify's examples: five minutes, as Stripe's.
const DefaultTolerance = 5 * time.Minute

// Sign returns the SignatureHeader value for body sent at t: the HMAC-SHA256
// with secret of "<unix seconds>.<body>", in hex.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("no valid signature header")
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("signature timestamp outside the tolerance (a replay?)")
)

// Verify checks a webhook request as a receiver must: header is the
// SignatureHeader value, body the raw request body (before any JSON
// decoding), now the receiver's clock. It accepts any of the v1
// signatures (a sender may add one per secret while secrets change) made
// with secret over "t.body", and a t within tolerance of now. A replay
// within the tolerance passes Verify: the receiver also drops event ids it
// has seen (keep them for at least the tolerance).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
