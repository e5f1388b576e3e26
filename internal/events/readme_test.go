package events_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
)

// TestREADMEVerifyExample compiles the README's Go verification example
// and runs it against deliveries signed by Sign: a good one, a forged
// one, a replay from too long ago.
func TestREADMEVerifyExample(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- webhook-verify-example -->\n```go\n")
	code, _, ok2 := strings.Cut(rest, "```\n<!-- /webhook-verify-example -->")
	if !ok || !ok2 {
		t.Fatal("the README has no webhook-verify-example block")
	}
	body := `{"id":"evt_1","type":"token.created"}`
	now := time.Now()
	good := events.Sign(secret, []byte(body), now)
	old := events.Sign(secret, []byte(body), now.Add(-10*time.Minute))
	forged := events.Sign([]byte("not the secret"), []byte(body), now)
	prog := `package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

` + code + `
func main() {
	secret, body := []byte(` + "`" + string(secret) + "`" + `), []byte(` + "`" + body + "`" + `)
	for _, h := range []string{"` + good + `", "` + forged + `", "` + old + `", ""} {
		fmt.Println(verifyTokengate(secret, h, body, time.Now()))
	}
}
`
	dir := t.TempDir()
	file := filepath.Join(dir, "main.go")
	if err := os.WriteFile(file, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the README example: %v\n%s", err, out)
	}
	want := "<nil>\nbad signature\nstale timestamp\nno signature\n"
	if string(out) != want {
		t.Errorf("the README example said\n%s\nwant\n%s", out, want)
	}
}
