package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
)

// newKey returns a fresh secrets key in base64.
func newKey(t *testing.T) string {
	t.Helper()
	k, err := keyring.GenerateSecretsKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func secrets(t *testing.T, current, previous string) *keyring.Secrets {
	t.Helper()
	s, err := keyring.NewSecrets(current, previous)
	if err != nil {
		t.Fatalf("NewSecrets: %v", err)
	}
	return s
}

// materialForms are the spellings of every key's material that must not
// appear in a sealed document.
func materialForms(d *keyring.Document) []string {
	var out []string
	for _, k := range d.Keys {
		out = append(out, string(k.Material), base64.StdEncoding.EncodeToString(k.Material),
			base64.RawURLEncoding.EncodeToString(k.Material))
	}
	return out
}

// sealedWith lists the secrets key ids a stored document is sealed with,
// one per key ("" for material in clear).
func sealedWith(t *testing.T, b []byte) []string {
	t.Helper()
	d, err := keyring.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range d.Keys {
		switch {
		case k.Sealed != nil && k.Material == nil:
			ids = append(ids, k.Sealed.KeyID)
		case k.Sealed == nil && k.Material != nil:
			ids = append(ids, "")
		default:
			t.Fatalf("key %s has material and sealed material, or neither", k.KID)
		}
	}
	return ids
}

func allEqual(ids []string, want string) bool {
	for _, id := range ids {
		if id != want {
			return false
		}
	}
	return len(ids) > 0
}

func TestNewSecrets(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, keyring.SecretsKeySize) // '+' and '/' in std base64
	spellings := []string{
		base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
		" " + base64.StdEncoding.EncodeToString(raw) + "\n",
	}
	var id string
	for _, s := range spellings {
		sec := secrets(t, s, "")
		if id == "" {
			id = sec.KeyID()
		}
		if sec.KeyID() != id || len(id) != 16 {
			t.Errorf("key id of %q = %q, want %q (16 hex)", s, sec.KeyID(), id)
		}
	}
	if s, err := keyring.NewSecrets("", ""); s != nil || err != nil {
		t.Errorf("no key: %v, %v; want nil, nil", s, err)
	}
	short := base64.StdEncoding.EncodeToString(raw[:16])
	for _, c := range []struct{ current, previous, want string }{
		{short, "", "secrets_key must be 32 bytes"},
		{"not base64!", "", "secrets_key must be base64"},
		{spellings[0], short, "secrets_key_previous must be 32 bytes"},
		{"", spellings[0], "secrets_key_previous needs secrets_key"},
		{spellings[0], spellings[3], "the same key"},
	} {
		_, err := keyring.NewSecrets(c.current, c.previous)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSecrets(%q, %q) = %v, want %q", c.current, c.previous, err, c.want)
			continue
		}
		for _, v := range []string{c.current, c.previous} {
			if v != "" && strings.Contains(err.Error(), strings.TrimSpace(v)) {
				t.Errorf("the error echoes the key: %v", err)
			}
		}
	}
	a, b := newKey(t), newKey(t)
	if a == b || secrets(t, a, "").KeyID() == secrets(t, b, "").KeyID() {
		t.Error("two generated keys are equal")
	}
}

// A document of every algorithm sealed and opened again is the same
// keyring; the stored form shows everything but the material.
func TestSealRoundTrip(t *testing.T) {
	for _, alg := range []string{jwt.HS256, jwt.RS256, jwt.ES256, jwt.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			d := newDoc(t, alg)
			sec := secrets(t, newKey(t), "")
			b, err := sec.Encode(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range materialForms(d) {
				if bytes.Contains(b, []byte(m)) {
					t.Fatal("the sealed document holds the material")
				}
			}
			for _, k := range d.Keys {
				if k.Sealed != nil || k.Material == nil {
					t.Fatal("Encode changed the document")
				}
				for _, s := range []string{k.KID, `"alg":"` + alg + `"`, `"state":"` + k.State + `"`} {
					if !bytes.Contains(b, []byte(s)) {
						t.Errorf("the sealed document does not show %s in clear", s)
					}
				}
			}
			if ids := sealedWith(t, b); !allEqual(ids, sec.KeyID()) {
				t.Errorf("sealed with %v, want %s", ids, sec.KeyID())
			}
			again, err := sec.Encode(d)
			if err != nil || bytes.Equal(again, b) {
				t.Errorf("two seals are equal (nonce reused?): %v", err)
			}
			got, sealing, err := sec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if sealing != (keyring.Sealing{}) || sec.Stale(sealing, true) {
				t.Errorf("sealing %+v of a document sealed with the current key", sealing)
			}
			for i, k := range got.Keys {
				if k.Sealed != nil || !bytes.Equal(k.Material, d.Keys[i].Material) {
					t.Fatalf("key %s does not open to its material", k.KID)
				}
			}
			if _, err := keyring.Parse(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Material sealed with a key that is not configured (or with none
// configured) is refused with the id of the key that sealed it.
func TestOpenWithWrongKey(t *testing.T) {
	d := newDoc(t, jwt.HS256)
	a, b := secrets(t, newKey(t), ""), secrets(t, newKey(t), "")
	stored, err := a.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sec  *keyring.Secrets
		want string
	}{
		{"wrong key", b, "this gateway's secrets_key has id " + b.KeyID()},
		{"no key", nil, "this gateway has no secrets_key"},
		{"wrong key and previous", secrets(t, newKey(t), newKey(t)), "secrets_key_previous id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := c.sec.Decode(stored)
			var wrong *keyring.WrongKeyError
			if !errors.As(err, &wrong) || !errors.Is(err, keyring.ErrSealed) || wrong.KeyID != a.KeyID() {
				t.Fatalf("Decode = %v, want a WrongKeyError naming %s", err, a.KeyID())
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "signing keys are encrypted with another secrets_key (id "+a.KeyID()+")") ||
				!strings.Contains(msg, c.want) {
				t.Errorf("message %q", msg)
			}
		})
	}
	// Clear material opens without a key, and with one (to be sealed).
	clear, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []*keyring.Secrets{nil, a} {
		if _, sealing, err := sec.Decode(clear); err != nil || !sealing.Clear || sec.Stale(sealing, false) != (sec != nil) {
			t.Errorf("clear document with %q: %+v, %v", sec.KeyID(), sealing, err)
		}
	}
}

// Sealed material moved to another key of the document, or altered,
// does not open: the kid is bound to it, and the error is not taken for a
// wrong key.
func TestSwappedOrAlteredMaterialRefused(t *testing.T) {
	d := newDoc(t, jwt.HS256)
	sec := secrets(t, newKey(t), "")
	stored, err := sec.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(fn func(keys []map[string]any)) []byte {
		var doc map[string]any
		if err := json.Unmarshal(stored, &doc); err != nil {
			t.Fatal(err)
		}
		var keys []map[string]any
		for _, k := range doc["keys"].([]any) {
			keys = append(keys, k.(map[string]any))
		}
		fn(keys)
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	swapped := tamper(func(keys []map[string]any) {
		keys[0]["sealed"], keys[1]["sealed"] = keys[1]["sealed"], keys[0]["sealed"]
	})
	altered := tamper(func(keys []map[string]any) {
		s := keys[0]["sealed"].(map[string]any)
		data, err := base64.StdEncoding.DecodeString(s["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		data[0] ^= 1
		s["data"] = base64.StdEncoding.EncodeToString(data)
	})
	newer := tamper(func(keys []map[string]any) { keys[0]["sealed"].(map[string]any)["v"] = 2 })
	for name, b := range map[string][]byte{"swapped": swapped, "altered": altered, "newer format": newer} {
		t.Run(name, func(t *testing.T) {
			_, _, err := sec.Decode(b)
			var wrong *keyring.WrongKeyError
			if !errors.Is(err, keyring.ErrSealed) || errors.As(err, &wrong) || !strings.Contains(err.Error(), d.Keys[0].KID) {
				t.Fatalf("Decode = %v; want an ErrSealed naming %s that is not a wrong key", err, d.Keys[0].KID)
			}
		})
	}
}

// A keyring kept in clear is sealed when a holder with a secrets key
// starts on it; the keys are the same.
func TestHolderSealsClearKeyring(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	before := get(t, keyring.NewHolder(st, policy, "", 0, clk.Now))
	clear := storedDoc(t, st)
	if ids := sealedWith(t, clear); !allEqual(ids, "") {
		t.Fatalf("without a secrets key the keyring is sealed: %v", ids)
	}
	sec := secrets(t, newKey(t), "")
	core, logs := observer.New(zapcore.InfoLevel)
	h := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := h.UseSecrets(context.Background(), sec, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	stored := storedDoc(t, st)
	if ids := sealedWith(t, stored); !allEqual(ids, sec.KeyID()) {
		t.Fatalf("after UseSecrets the keyring is sealed with %v, want %s", ids, sec.KeyID())
	}
	for _, m := range materialForms(before.Doc) {
		if bytes.Contains(stored, []byte(m)) {
			t.Fatal("the stored keyring still holds material in clear")
		}
	}
	after := get(t, h)
	if !slices.Equal(kids(after), kids(before)) || !bytes.Equal(after.Signer().Secret(), before.Signer().Secret()) {
		t.Error("sealing changed the keys")
	}
	if logs.FilterMessageSnippet("sealed the signing keys in clear").Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
	// A write (a lifetime change) keeps it sealed.
	lt := int64(1800)
	if _, err := h.Apply(context.Background(), keyring.Change{LifetimeSeconds: &lt}); err != nil {
		t.Fatal(err)
	}
	if ids := sealedWith(t, storedDoc(t, st)); !allEqual(ids, sec.KeyID()) {
		t.Fatalf("after a write the keyring is sealed with %v", ids)
	}
}

// A keyring is created sealed when a secrets key is set from the start.
func TestHolderCreatesSealedKeyring(t *testing.T) {
	st := openStore(t)
	sec := secrets(t, newKey(t), "")
	h := keyring.NewHolder(st, policy, "", 0, (&clock{t: t0}).Now)
	if err := h.UseSecrets(context.Background(), sec, nil); err != nil {
		t.Fatal(err)
	}
	ks := get(t, h)
	stored := storedDoc(t, st)
	if ids := sealedWith(t, stored); !allEqual(ids, sec.KeyID()) {
		t.Fatalf("sealed with %v", ids)
	}
	if bytes.Contains(stored, []byte(base64.StdEncoding.EncodeToString(ks.Signer().Secret()))) {
		t.Fatal("the HS256 secret is in the store")
	}
}

// A holder with a wrong key, or none, refuses a sealed keyring: it is
// never replaced, the reason is logged once, and UseSecrets does not
// install the wrong key.
func TestHolderRefusesWrongKey(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	a := secrets(t, newKey(t), "")
	ha := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := ha.UseSecrets(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	get(t, ha)
	stored := storedDoc(t, st)

	for _, c := range []struct {
		name string
		sec  *keyring.Secrets
	}{{"wrong key", secrets(t, newKey(t), "")}, {"no key", nil}} {
		t.Run(c.name, func(t *testing.T) {
			h := keyring.NewHolder(st, policy, "", 0, clk.Now)
			err := h.UseSecrets(context.Background(), c.sec, nil)
			if !errors.Is(err, keyring.ErrSealed) || !strings.Contains(err.Error(), "(id "+a.KeyID()+")") {
				t.Fatalf("UseSecrets = %v", err)
			}
			// Installed anyway (a store unreachable at start), it answers
			// errors, logged once, and changes nothing.
			core, logs := observer.New(zapcore.InfoLevel)
			h.SetSecrets(c.sec, zap.New(core))
			for range 3 {
				if _, err := h.Get(context.Background()); !errors.Is(err, keyring.ErrSealed) {
					t.Fatalf("Get = %v", err)
				}
				h.Invalidate()
			}
			if _, err := h.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err == nil {
				t.Fatal("a reset went through")
			}
			if !bytes.Equal(storedDoc(t, st), stored) {
				t.Fatal("the stored keyring changed")
			}
			if n := logs.FilterMessageSnippet("cannot be opened").Len(); n != 1 {
				t.Errorf("%d log lines, want 1: %v", n, logs.All())
			}
		})
	}
	if _, err := ha.Get(context.Background()); err != nil {
		t.Fatalf("the right key no longer opens the keyring: %v", err)
	}
}

// Rotation: with the new key as secrets_key and the old one as
// secrets_key_previous, the keyring is sealed again with the new key; then
// the new key alone opens it and the old one does not.
func TestHolderRotatesSecretsKey(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	oldKey, newK := newKey(t), newKey(t)
	h := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := h.UseSecrets(context.Background(), secrets(t, oldKey, ""), nil); err != nil {
		t.Fatal(err)
	}
	before := get(t, h)

	rotating := secrets(t, newK, oldKey)
	if err := keyring.NewHolder(st, policy, "", 0, clk.Now).UseSecrets(context.Background(), secrets(t, newK, ""), nil); !errors.Is(err, keyring.ErrSealed) {
		t.Fatalf("the new key alone opened the old keyring: %v", err)
	}
	h2 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := h2.UseSecrets(context.Background(), rotating, nil); err != nil {
		t.Fatal(err)
	}
	if ids := sealedWith(t, storedDoc(t, st)); !allEqual(ids, rotating.KeyID()) {
		t.Fatalf("after the rotation sealed with %v, want %s", ids, rotating.KeyID())
	}
	h3 := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := h3.UseSecrets(context.Background(), secrets(t, newK, ""), nil); err != nil {
		t.Fatalf("the new key alone: %v", err)
	}
	after := get(t, h3)
	if !slices.Equal(kids(after), kids(before)) || !bytes.Equal(after.Signer().Secret(), before.Signer().Secret()) {
		t.Error("the rotation changed the signing keys")
	}
	if err := keyring.NewHolder(st, policy, "", 0, clk.Now).UseSecrets(context.Background(), secrets(t, oldKey, ""), nil); !errors.Is(err, keyring.ErrSealed) {
		t.Fatalf("the old key still opens the keyring: %v", err)
	}
}

// During a rolling rotation two nodes hold the two keys the other way
// round; each seals again once at its start, not on every read, so they
// do not rewrite the keyring back and forth.
func TestHolderResealsOnce(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	a, b := newKey(t), newKey(t)
	oldNode := keyring.NewHolder(st, policy, "", 0, clk.Now)
	if err := oldNode.UseSecrets(context.Background(), secrets(t, a, b), nil); err != nil {
		t.Fatal(err)
	}
	get(t, oldNode)
	newNode := keyring.NewHolder(st, policy, "", 0, clk.Now)
	nb := secrets(t, b, a)
	if err := newNode.UseSecrets(context.Background(), nb, nil); err != nil {
		t.Fatal(err)
	}
	if ids := sealedWith(t, storedDoc(t, st)); !allEqual(ids, nb.KeyID()) {
		t.Fatalf("sealed with %v after the new node's start", ids)
	}
	// The old node writes (sealing with its key); the new node reads.
	lt := int64(1200)
	if _, err := oldNode.Apply(context.Background(), keyring.Change{LifetimeSeconds: &lt}); err != nil {
		t.Fatal(err)
	}
	written := storedDoc(t, st)
	newNode.Invalidate()
	if ks := get(t, newNode); ks.Doc.LifetimeSeconds != lt {
		t.Fatalf("the new node reads lifetime %d", ks.Doc.LifetimeSeconds)
	}
	if !bytes.Equal(storedDoc(t, st), written) {
		t.Fatal("the new node sealed the keyring again on a read after its start")
	}
}

// BenchmarkOpenKeyring is what sealing adds to a keyring load (every
// refreshEvery, and after each change): opening an RS256 keyring of two
// keys, against decoding it in clear.
func BenchmarkOpenKeyring(b *testing.B) {
	d, err := keyring.New(jwt.RS256, lifetime, policy, t0)
	if err != nil {
		b.Fatal(err)
	}
	k, err := keyring.GenerateSecretsKey()
	if err != nil {
		b.Fatal(err)
	}
	sec, err := keyring.NewSecrets(k, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sec  *keyring.Secrets
	}{{"clear", nil}, {"sealed", sec}} {
		stored, err := c.sec.Encode(d)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.sec.Decode(stored); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
