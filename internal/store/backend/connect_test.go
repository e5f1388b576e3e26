package backend

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// A Redis that is down when Connect runs is attached once it is up, with
// one log line when it fails and one when it is back.
func TestConnectRetriesRedis(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	loc, err := Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	d := store.NewDeferred()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait(); _ = d.Close() }()
	if err := d.Subscribe(ctx, func(store.Event) {}); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	if err := Connect(ctx, d, loc, zap.New(core), &wg); err != nil {
		t.Fatalf("Connect with Redis down: %v", err)
	}
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetUser with Redis down: %v", err)
	}
	srv.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	for d.Backend() == nil {
		if time.Now().After(deadline) {
			t.Fatal("not attached after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser after recovery: %v", err)
	}
	if n := logs.FilterMessageSnippet("unreachable").Len(); n != 1 {
		t.Errorf("%d lines say unreachable, want 1", n)
	}
	if n := logs.FilterMessageSnippet("reachable again").Len(); n != 1 {
		t.Errorf("%d lines say reachable again, want 1", n)
	}
}

// An embedded store locked by another opener fails Connect at once.
func TestConnectLockedEmbeddedStoreFails(t *testing.T) {
	loc, err := Parse(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	first := store.NewDeferred()
	if err := Connect(context.Background(), first, loc, zap.NewNop(), &wg); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if first.Backend() == nil {
		t.Fatal("the embedded store is not attached")
	}
	if err := Connect(context.Background(), store.NewDeferred(), loc, zap.NewNop(), &wg); err == nil {
		t.Fatal("a second Connect to a locked file succeeded")
	}
}
