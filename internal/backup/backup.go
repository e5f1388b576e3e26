// Package backup moves the whole state of a store into one JSON document
// and back: `tokengate store export` and `tokengate store import`. It works
// through the store's role interfaces only, so an export from the embedded
// store imports into Redis and the other way round, and nobody has to ask
// their users for new tokens when the gateway outgrows one node.
//
// An export holds the users (with their password hashes), the tokens (the
// SHA-256 of their secrets, never a secret, with their last use), the
// OAuth keys (with the hashes of their secrets), the documents (the
// signing keyring as stored, so keys encrypted at rest stay encrypted, and
// the permission list) and the deny-list of access tokens. Web sessions and
// failure counters are not exported: users sign in to the pages again, and
// counting guesses starts afresh.
//
// An export is not a snapshot: it reads the users, then each user's
// tokens, while the gateway keeps serving, so a change made during the
// export may be in it or not. An import is not one transaction either: it
// validates the whole document first and writes nothing if anything is
// wrong, but a store that fails part-way leaves what was written so far
// (PartialError says how much); the way to retry is to import again into
// a fresh, empty store.
package backup

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// Format and Version identify an export document.
const (
	Format  = "tokengate-export"
	Version = 1
)

// MaxImportBytes bounds the body of an import: room for about a million
// tokens, far more than one gateway holds, while a mistaken upload of
// something else cannot exhaust the node's memory.
const MaxImportBytes = 256 << 20

// Documents are the names of the store documents an export carries, in
// the order an import writes them. The store has no way to list its
// documents: a new kind of document must be added here to be exported.
var Documents = []string{store.DocKeyring, store.DocACL,
	store.DocAssertionKeysPrefix + "ES256", store.DocAssertionKeysPrefix + "RS256", store.DocAssertionKeysPrefix + "EdDSA"}

// Store is what export and import use: every role that holds state worth
// keeping (sessions and failure counters are left out on purpose).
type Store interface {
	store.Users
	store.Tokens
	store.Clients
	store.Documents
	store.Denials
}

// Document is an export. Its JSON form is the file `tokengate store
// export` writes.
type Document struct {
	// Format is always Format and Version always Version (1).
	Format  string `json:"format"`
	Version int    `json:"version"`
	// ExportedAt is when the export began.
	ExportedAt time.Time `json:"exported_at"`
	// Users, sorted by name, with their password hashes.
	Users []store.User `json:"users"`
	// Tokens of every user, by owner then creation: hashes only.
	Tokens []store.Token `json:"tokens"`
	// Clients are the OAuth keys, with the hashes of their secrets.
	Clients []store.Client `json:"clients"`
	// Documents are the store documents (see Documents) that are JSON,
	// byte for byte as stored.
	Documents map[string]json.RawMessage `json:"documents"`
	// BinaryDocuments are those that are not JSON, in base64 (none today;
	// a document encrypted as a whole would be one).
	BinaryDocuments map[string][]byte `json:"binary_documents,omitempty"`
	// Denials are the access tokens on the deny-list that have not
	// expired.
	Denials []Denial `json:"denials"`
}

// Denial is one entry of the deny-list (store.Denial with JSON names).
type Denial struct {
	JTI   string    `json:"jti"`
	Until time.Time `json:"until"`
}

// Counts says how many records of each kind an export or import holds or
// wrote.
type Counts struct {
	Users     int `json:"users"`
	Tokens    int `json:"tokens"`
	Clients   int `json:"clients"`
	Documents int `json:"documents"`
	Denials   int `json:"denials"`
}

// String lists the counts in words.
func (c Counts) String() string {
	return fmt.Sprintf("%s, %s, %s, %s, %s", plural(c.Users, "user"), plural(c.Tokens, "token"),
		plural(c.Clients, "OAuth key"), plural(c.Documents, "document"), plural(c.Denials, "denial"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Export is an export under way: everything but the tokens has been read
// (see Begin), the tokens are read user by user as they are written.
type Export struct {
	src  Store
	head Document // without Tokens
}

// Begin reads what an export holds apart from the tokens: the users, the
// OAuth keys, the documents and the deny-list. An error here comes before
// a byte of the export is written, so it can still be answered as such.
func Begin(ctx context.Context, src Store, now time.Time) (*Export, error) {
	users, err := src.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	clients, err := src.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing OAuth keys: %w", err)
	}
	denied, err := src.ListDenied(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing denials: %w", err)
	}
	head := Document{
		Format: Format, Version: Version, ExportedAt: now.UTC(),
		Users: users, Clients: clients, Documents: map[string]json.RawMessage{},
	}
	for _, name := range Documents {
		b, err := src.GetDocument(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading the %s document: %w", name, err)
		case json.Valid(b):
			head.Documents[name] = json.RawMessage(b)
		default:
			if head.BinaryDocuments == nil {
				head.BinaryDocuments = map[string][]byte{}
			}
			head.BinaryDocuments[name] = b
		}
	}
	for _, d := range denied {
		head.Denials = append(head.Denials, Denial{JTI: d.JTI, Until: d.Until.UTC()})
	}
	slices.SortFunc(head.Denials, func(a, b Denial) int { return cmp.Compare(a.JTI, b.JTI) })
	return &Export{src: src, head: head}, nil
}

// WriteTo writes the export to w as one JSON document, one record a line,
// reading each user's tokens as it goes, and returns what it wrote. If it
// fails, w holds a truncated document that no import accepts. A user
// deleted since Begin is exported without tokens.
func (e *Export) WriteTo(ctx context.Context, w io.Writer) (Counts, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	ew := &errWriter{w: bw}
	h := e.head
	var n Counts
	ew.printf(`{"format":%s,"version":%d,"exported_at":%s,`+"\n", mustJSON(h.Format), h.Version, mustJSON(h.ExportedAt))
	ew.list("users", each(h.Users, &n.Users))
	ew.printf(",\n")
	ew.list("tokens", func(yield func(any) bool) {
		for _, u := range h.Users {
			toks, err := e.src.ListTokens(ctx, u.Name)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since Begin
			}
			if err != nil {
				ew.fail(fmt.Errorf("listing the tokens of %s: %w", u.Name, err))
				return
			}
			each(toks, &n.Tokens)(yield)
		}
	})
	ew.printf(",\n")
	ew.list("clients", each(h.Clients, &n.Clients))
	ew.printf(",\n")
	// The documents are written byte for byte as stored (json.Marshal
	// would compact them).
	ew.printf(`"documents":{`)
	for _, name := range Documents {
		if raw, ok := h.Documents[name]; ok {
			if n.Documents > 0 {
				ew.printf(",")
			}
			ew.printf("\n%s:%s", mustJSON(name), raw)
			n.Documents++
		}
	}
	ew.printf("},\n")
	if len(h.BinaryDocuments) > 0 {
		ew.printf(`"binary_documents":%s,`+"\n", mustJSON(h.BinaryDocuments))
		n.Documents += len(h.BinaryDocuments)
	}
	ew.list("denials", each(h.Denials, &n.Denials))
	ew.printf("}\n")
	if ew.err == nil {
		ew.err = bw.Flush()
	}
	return n, ew.err
}

// each yields the records of list and counts those written in n.
func each[T any](list []T, n *int) func(yield func(any) bool) {
	return func(yield func(any) bool) {
		for _, v := range list {
			if !yield(v) {
				return
			}
			*n++
		}
	}
}

// errWriter writes until the first error and keeps it.
type errWriter struct {
	w   io.Writer
	err error
}

func (ew *errWriter) fail(err error) {
	if ew.err == nil {
		ew.err = err
	}
}

func (ew *errWriter) printf(format string, args ...any) {
	if ew.err == nil {
		_, ew.err = fmt.Fprintf(ew.w, format, args...)
	}
}

// list writes `"name":[`, the records items yields, one a line, and `]`.
func (ew *errWriter) list(name string, items func(yield func(any) bool)) {
	ew.printf(`%s:[`, mustJSON(name))
	first := true
	items(func(v any) bool {
		if ew.err != nil {
			return false
		}
		b, err := json.Marshal(v)
		if err != nil {
			ew.fail(fmt.Errorf("encoding a record of %s: %w", name, err))
			return false
		}
		sep := ",\n"
		if first {
			sep, first = "\n", false
		}
		ew.printf("%s%s", sep, b)
		return ew.err == nil
	})
	ew.printf("]")
}

// mustJSON encodes values that cannot fail to encode (strings, times of
// this era, byte slices).
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("backup: encoding %T: %v", v, err))
	}
	return string(b)
}
