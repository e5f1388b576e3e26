package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

// wire is a Document as read, its lists of records still raw, so that a
// record that does not decode is named by its place ("tokens[3]"). The
// lists shadow the Document's own (encoding/json takes the shallower
// field); every other member is the Document's, so the two cannot drift
// apart.
type wire struct {
	Document
	Users   []json.RawMessage `json:"users"`
	Tokens  []json.RawMessage `json:"tokens"`
	Clients []json.RawMessage `json:"clients"`
	Denials []json.RawMessage `json:"denials"`
}

// Decode reads an export from r: exactly one JSON document, no unknown
// members anywhere, the format and version this gateway writes. Its errors
// are 400s (413 past a limit the caller put on r with
// http.MaxBytesReader) that name the first problem and its place, never a
// secret (an export holds none, but a hash is quoted nowhere either).
func Decode(r io.Reader) (*Document, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		if errors.Is(jsonbody.Explain(err), apierr.ErrBodyTooLarge) {
			return nil, apierr.ErrBodyTooLarge
		}
		return nil, invalid("%s", describe(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil && errors.Is(jsonbody.Explain(err), apierr.ErrBodyTooLarge) {
			return nil, apierr.ErrBodyTooLarge
		}
		return nil, invalid("the export must be a single JSON object")
	}
	if w.Format != Format {
		return nil, invalid("format must be %q: this is not a tokengate export", Format)
	}
	if w.Version != Version {
		return nil, invalid("version %d is not supported (this gateway reads version %d)", w.Version, Version)
	}
	d := &w.Document
	var err error
	if d.Users, err = records[store.User]("users", w.Users); err != nil {
		return nil, err
	}
	if d.Tokens, err = records[store.Token]("tokens", w.Tokens); err != nil {
		return nil, err
	}
	if d.Clients, err = records[store.Client]("clients", w.Clients); err != nil {
		return nil, err
	}
	if d.Denials, err = records[Denial]("denials", w.Denials); err != nil {
		return nil, err
	}
	return d, nil
}

// records decodes each raw record of the list named list.
func records[T any](list string, raw []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(raw))
	for i, r := range raw {
		var v T
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("%s[%d]: %s", list, i, describe(err))
		}
		out = append(out, v)
	}
	return out, nil
}

// describe says what is wrong with a record that does not decode, naming
// the member but never its value.
func describe(err error) string {
	var (
		ute *json.UnmarshalTypeError
		fe  *apierr.FieldError
	)
	e := jsonbody.Explain(err)
	switch {
	case errors.As(e, &fe):
		return fe.Field + ": " + fe.Err.Error()
	case errors.As(err, &ute):
		return "must be a JSON object"
	case e.Error() == "malformed JSON":
		// An UnmarshalText error (a hash that is not 64 hex digits, a
		// time that is not RFC 3339) carries no member name.
		return err.Error()
	}
	return e.Error()
}

// invalid is a 400 about the export.
func invalid(format string, args ...any) error {
	return apierr.BadRequest("invalid export: "+format, args...)
}

// Validate checks the whole export before anything is written: user names
// (canonical, unique), every token's owner among the users, token ids and
// hashes unique, label keys unique per owner, kinds and allowed IPs that
// the gateway understands, OAuth key ids (the tgc_ shape, unique), the
// documents' names and shapes, and the denials. The error is a 400 naming
// the first problem and the record it is in (by place and name or id,
// never by a hash or a secret).
func (d *Document) Validate() error {
	names := make(map[string]bool, len(d.Users))
	for i, u := range d.Users {
		at := fmt.Sprintf("users[%d]", i)
		if n, err := users.NormalizeName(u.Name); err != nil {
			return invalid("%s: name: %v", at, err)
		} else if n != u.Name {
			return invalid("%s: name %q is not in its stored (lowercase) form", at, u.Name)
		}
		if names[u.Name] {
			return invalid("%s: user %q appears twice", at, u.Name)
		}
		names[u.Name] = true
	}
	type ownerLabel struct{ owner, key string }
	var (
		ids    = make(map[[2]string]bool, len(d.Tokens))
		hashes = make(map[store.TokenHash]string, len(d.Tokens))
		labels = make(map[ownerLabel]string)
	)
	for i, t := range d.Tokens {
		at := fmt.Sprintf("tokens[%d] (%s/%s)", i, t.Owner, t.ID)
		switch {
		case t.ID == "" || strings.ContainsAny(t.ID, "/ ") || len(t.ID) > 64:
			return invalid("tokens[%d]: id must be 1-64 characters without / or spaces", i)
		case !names[t.Owner]:
			return invalid("%s: owner %q is not among the users", at, t.Owner)
		case t.Kind != store.KindPAT && t.Kind != store.KindLegacy:
			return invalid("%s: kind must be %q or %q", at, store.KindPAT, store.KindLegacy)
		case t.Hash == store.TokenHash{}:
			return invalid("%s: hash is missing", at)
		}
		if ids[[2]string{t.Owner, t.ID}] {
			return invalid("%s: the id appears twice for that owner", at)
		}
		ids[[2]string{t.Owner, t.ID}] = true
		for _, h := range t.Hashes() {
			if other, ok := hashes[h]; ok {
				return invalid("%s: has the same hash as %s", at, other)
			}
			hashes[h] = t.Owner + "/" + t.ID
		}
		if t.LabelKey != "" {
			k := ownerLabel{t.Owner, t.LabelKey}
			if other, ok := labels[k]; ok {
				return invalid("%s: label %q is also the label of %s", at, t.Label, other)
			}
			labels[k] = t.Owner + "/" + t.ID
		}
		if _, err := iplist.Parse(t.AllowedIPs); err != nil {
			return invalid("%s: allowed_ips: %v", at, err)
		}
		if t.LastUsedIP != "" {
			if _, err := recordedIP(t.LastUsedIP); err != nil {
				return invalid("%s: last_used_ip: %v", at, err)
			}
		}
		if err := checkRecent(t.RecentAddresses); err != nil {
			return invalid("%s: recent_addresses: %v", at, err)
		}
	}
	clients := make(map[string]bool, len(d.Clients))
	for i, c := range d.Clients {
		at := fmt.Sprintf("clients[%d] (%s)", i, c.ID)
		switch {
		case !strings.HasPrefix(c.ID, token.ClientIDPrefix) || len(c.ID) > 64 || strings.ContainsAny(c.ID, "/ "):
			return invalid("clients[%d]: id must start with %q and have at most 64 characters, without / or spaces", i, token.ClientIDPrefix)
		case clients[c.ID]:
			return invalid("%s: the id appears twice", at)
		case c.SecretHash == store.TokenHash{}:
			return invalid("%s: secret_hash is missing", at)
		}
		clients[c.ID] = true
		if _, err := iplist.Parse(c.AllowedIPs); err != nil {
			return invalid("%s: allowed_ips: %v", at, err)
		}
	}
	for name, raw := range d.Documents {
		if err := checkDocument(name, raw, true); err != nil {
			return err
		}
		if _, ok := d.BinaryDocuments[name]; ok {
			return invalid("document %q is given twice (documents and binary_documents)", name)
		}
	}
	for name := range d.BinaryDocuments {
		if err := checkDocument(name, nil, false); err != nil {
			return err
		}
	}
	jtis := make(map[string]bool, len(d.Denials))
	for i, den := range d.Denials {
		switch {
		case den.JTI == "":
			return invalid("denials[%d]: jti is missing", i)
		case jtis[den.JTI]:
			return invalid("denials[%d]: jti %q appears twice", i, den.JTI)
		case den.Until.IsZero():
			return invalid("denials[%d]: until is missing", i)
		}
		jtis[den.JTI] = true
	}
	return nil
}

// checkDocument checks a document's name and, when it is JSON, its shape:
// the keyring must decode as one (its keys stay as they are: encrypted
// keys are not opened here), the permission list must be an object.
func checkDocument(name string, raw json.RawMessage, isJSON bool) error {
	if !slices.Contains(Documents, name) {
		return invalid("documents: unknown document %q (known: %s)", name, strings.Join(Documents, ", "))
	}
	if !isJSON {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return invalid("documents: %s must be a JSON object", name)
	}
	if name == store.DocKeyring || strings.HasPrefix(name, store.DocAssertionKeysPrefix) {
		if _, err := keyring.Decode(raw); err != nil {
			return invalid("documents: %s: %v", name, err)
		}
	}
	return nil
}

// Counts returns how many records of each kind d holds.
func (d *Document) Counts() Counts {
	return Counts{Users: len(d.Users), Tokens: len(d.Tokens), Clients: len(d.Clients),
		Documents: len(d.Documents) + len(d.BinaryDocuments), Denials: len(d.Denials)}
}

// CheckEmpty answers a 409 naming what dst holds when it holds any user,
// OAuth key or document (a keyring is made on first use: a gateway that
// has issued or checked an access token has one): an import writes only
// into an empty store. Tokens need a user, sessions too; denials alone do
// not count (they name random jtis and can only refuse more).
func CheckEmpty(ctx context.Context, dst Store) error {
	us, err := dst.ListUsers(ctx)
	if err != nil {
		return apierr.FromStore(err)
	}
	cs, err := dst.ListClients(ctx)
	if err != nil {
		return apierr.FromStore(err)
	}
	var held []string
	if len(us) > 0 {
		held = append(held, plural(len(us), "user"))
	}
	if len(cs) > 0 {
		held = append(held, plural(len(cs), "OAuth key"))
	}
	for _, name := range Documents {
		_, err := dst.GetDocument(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return apierr.FromStore(err)
		case name == store.DocKeyring:
			held = append(held, "a signing keyring")
		case name == store.DocACL:
			held = append(held, "a permission list")
		case strings.HasPrefix(name, store.DocAssertionKeysPrefix):
			held = append(held, "identity assertion keys")
		default:
			held = append(held, "the document "+name)
		}
	}
	if len(held) == 0 {
		return nil
	}
	return apierr.Conflict("", fmt.Errorf(
		"the store is not empty: it holds %s; an import writes only into an empty store (start the gateway on a fresh store and import before it serves anyone)",
		strings.Join(held, ", ")))
}

// ErrConcurrentWrite: another node wrote what the import was writing (a
// user, an OAuth key, a keyring) between the emptiness check and the
// write.
var ErrConcurrentWrite = errors.New("another node wrote to the store during the import")

// PartialError is an import that a store error stopped part-way: Written
// were written (and are in the store now), out of Total.
type PartialError struct {
	Written, Total Counts
	Err            error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("import stopped after writing %s (of %s): %v; the store now holds part of the export: "+
		"empty it or use a fresh store (another file or Redis database), then import the whole file again",
		e.Written, e.Total, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Import writes a validated export into dst, which CheckEmpty found empty,
// through the store's ordinary writes, so that every write announces its
// event and the caches of every node sharing dst are right. The order
// keeps each step safe on a store that is already serving: the denials
// first, so that no revoked access token verifies once the keys are in;
// then the documents, before any OAuth key exists that could make a node
// create a keyring of its own; then the users, their tokens (without the
// per-user cap: the export's tokens were all allowed where they were
// made) and the OAuth keys.
//
// It is not one transaction: on a store error it stops and returns a
// *PartialError saying what was written. A document that appeared in dst
// since CheckEmpty (another node made a keyring) is not overwritten: that
// stops the import too.
func Import(ctx context.Context, dst Store, d *Document) (Counts, error) {
	var n Counts
	stop := func(format string, args ...any) (Counts, error) {
		return n, &PartialError{Written: n, Total: d.Counts(), Err: fmt.Errorf(format, args...)}
	}
	for _, den := range d.Denials {
		if err := dst.Deny(ctx, store.Denial{JTI: den.JTI, Until: den.Until}); err != nil {
			return stop("deny-list entry %q: %w", den.JTI, err)
		}
		n.Denials++
	}
	for _, name := range Documents {
		doc, ok := []byte(d.Documents[name]), true
		if doc == nil {
			doc, ok = d.BinaryDocuments[name]
		}
		if !ok {
			continue
		}
		_, err := dst.UpdateDocument(ctx, name, func(cur []byte) ([]byte, error) {
			if cur != nil && !bytes.Equal(cur, doc) {
				return nil, fmt.Errorf("a %s document appeared in the store during the import: %w", name, ErrConcurrentWrite)
			}
			return doc, nil
		})
		if err != nil {
			return stop("document %s: %w", name, err)
		}
		n.Documents++
	}
	for _, u := range d.Users {
		if err := dst.CreateUser(ctx, u); err != nil {
			return stop("user %s: %w", u.Name, err)
		}
		n.Users++
	}
	for _, t := range d.Tokens {
		cleanHosts(&t)
		if err := dst.CreateToken(ctx, t, -1); err != nil {
			return stop("token %s/%s: %w", t.Owner, t.ID, err)
		}
		n.Tokens++
	}
	for _, c := range d.Clients {
		if err := dst.CreateClient(ctx, c); err != nil {
			return stop("OAuth key %s: %w", c.ID, err)
		}
		n.Clients++
	}
	return n, nil
}

// checkRecent checks a token's recent addresses as RecordLastUse makes
// them: at most store.MaxRecentAddresses distinct addresses, each with a
// time (their hosts are cleaned by cleanHosts).
func checkRecent(as []store.AddressUse) error {
	if len(as) > store.MaxRecentAddresses {
		return fmt.Errorf("more than %d", store.MaxRecentAddresses)
	}
	seen := make(map[netip.Addr]bool, len(as))
	for _, a := range as {
		ip, err := recordedIP(a.IP)
		switch {
		case err != nil:
			return err
		case seen[ip]:
			return fmt.Errorf("%s appears twice", a.IP)
		case a.LastUsedAt.IsZero():
			return fmt.Errorf("%s has no last_used_at", a.IP)
		}
		seen[ip] = true
	}
	return nil
}

// cleanHosts makes t's recorded sites what the gate records
// (store.CleanHost): a document written by hand, or exported before sites
// were cleaned, may hold a host of any size with line breaks or terminal
// escapes, which the listings, the legacy report and the CLI show.
func cleanHosts(t *store.Token) {
	t.LastUsedHost = store.CleanHost(t.LastUsedHost)
	t.RecentAddresses = slices.Clone(t.RecentAddresses)
	for i := range t.RecentAddresses {
		t.RecentAddresses[i].Host = store.CleanHost(t.RecentAddresses[i].Host)
	}
}

// recordedIP parses a client address as the gate records it: an IP in
// its canonical form (netip's String), with a zone of printable
// characters without spaces if any. netip alone takes "0:0::1" and zones
// with spaces, line breaks or terminal escapes, which the stores' line
// formats and the CLI's tables cannot hold.
func recordedIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.String() != s || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return netip.Addr{}, fmt.Errorf("%s is not an address in canonical form", apierr.Quote(s))
	}
	return ip, nil
}
