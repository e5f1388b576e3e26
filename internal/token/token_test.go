package token

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestNewPATShapeAndChecksum(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tok, err := NewPAT()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != PATLen || !strings.HasPrefix(tok, "tgp_") {
			t.Fatalf("bad shape %q", tok)
		}
		if got := Classify(tok); got != PAT {
			t.Fatalf("Classify(new PAT) = %v", got)
		}
		if seen[tok] {
			t.Fatalf("duplicate token after %d", i)
		}
		seen[tok] = true
	}
}

func TestPATChecksumCatchesEveryOneCharacterTypo(t *testing.T) {
	tok, err := NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(PATPrefix); i < len(tok); i++ {
		for _, c := range []byte(base62) {
			if c == tok[i] {
				continue
			}
			typo := tok[:i] + string(c) + tok[i+1:]
			if Classify(typo) != Malformed {
				t.Fatalf("typo at %d (%q) accepted", i, typo)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	pat, _ := NewPAT()
	legacy, _ := NewLegacy()
	tests := []struct {
		name string
		tok  string
		want Kind
	}{
		{"pat", pat, PAT},
		{"legacy from seed", "e444c69894d2087696e0a6c6914788f67ebcf6ee", Legacy},
		{"new legacy", legacy, Legacy},
		{"legacy uppercase", "E444C69894D2087696E0A6C6914788F67EBCF6EE", Malformed},
		{"legacy 39", "e444c69894d2087696e0a6c6914788f67ebcf6e", Malformed},
		{"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", JWT},
		{"jwt empty signature", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.", Malformed},
		{"jwt two parts", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0", Malformed},
		{"jwt four parts", "a.b.c.d", Malformed},
		{"jwt padding", "a.b.c=", Malformed},
		{"pat wrong prefix", "tgx_" + pat[4:], Malformed},
		{"pat short", pat[:len(pat)-1], Malformed},
		{"pat bad char", pat[:10] + "!" + pat[11:], Malformed},
		{"empty", "", Malformed},
		{"garbage", "not a token", Malformed},
		{"too long", strings.Repeat("a", MaxLen) + ".b.c", Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.tok); got != tt.want {
				t.Errorf("Classify(%q) = %v, want %v", tt.tok, got, tt.want)
			}
		})
	}
}

func TestHashIsSHA256(t *testing.T) {
	if Hash("abc") != sha256.Sum256([]byte("abc")) {
		t.Fatal("Hash is not SHA-256")
	}
}

func TestNewIDAndLegacyShapes(t *testing.T) {
	id, err := NewID()
	if err != nil || len(id) != 16 || !isLowerHex(id) {
		t.Fatalf("NewID = %q, %v", id, err)
	}
	l, err := NewLegacy()
	if err != nil || Classify(l) != Legacy {
		t.Fatalf("NewLegacy = %q, %v", l, err)
	}
}

func BenchmarkClassifyPAT(b *testing.B) {
	tok, _ := NewPAT()
	b.ReportAllocs()
	for b.Loop() {
		if Classify(tok) != PAT {
			b.Fatal("not a PAT")
		}
	}
}

func TestClientSecretsAndIDs(t *testing.T) {
	s, err := NewClientSecret()
	if err != nil || !IsClientSecret(s) || !strings.HasPrefix(s, "tgs_") {
		t.Fatalf("NewClientSecret = %q, %v", s, err)
	}
	if Classify(s) == PAT {
		t.Fatal("a client secret classifies as a PAT")
	}
	pat, _ := NewPAT()
	if IsClientSecret(pat) {
		t.Fatal("a PAT passes as a client secret")
	}
	if IsClientSecret(s[:len(s)-1]+"0") && s[len(s)-1] != '0' {
		t.Fatal("a client secret with a wrong checksum passes")
	}
	id, err := NewClientID()
	if err != nil || len(id) != 20 || !strings.HasPrefix(id, "tgc_") {
		t.Fatalf("NewClientID = %q, %v", id, err)
	}
}

func TestLooksSecret(t *testing.T) {
	pat, _ := NewPAT()
	cs, _ := NewClientSecret()
	leg, _ := NewLegacy()
	for _, s := range []string{pat, cs, leg, "x " + pat + " y", "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.sig", strings.Repeat("a", 32)} {
		if !LooksSecret(s) {
			t.Errorf("LooksSecret(%q) = false", s)
		}
	}
	for _, s := range []string{"", "label", "allowed_ips", "repo:status", "2001:db8:85a3::8a2e:370:7334/64", "a.b.c",
		strings.Repeat("a", 31), strings.Repeat("abcdefgh.", 20), "read write admin"} {
		if LooksSecret(s) {
			t.Errorf("LooksSecret(%q) = true", s)
		}
	}
}
