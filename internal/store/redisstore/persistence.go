package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Persistence is what one Redis primary keeps on disk.
type Persistence struct {
	// Addr is the primary's address.
	Addr string
	// AOF: the append-only file is on (appendonly yes).
	AOF bool
	// RDB: snapshots are taken (a save point is configured).
	RDB bool
	// RDBUnknown: the save points could not be read (CONFIG GET refused,
	// as managed Redis often does), so RDB says nothing.
	RDBUnknown bool
	// Err, when set, says why nothing could be read at all.
	Err error
}

// Volatile reports whether the primary surely keeps nothing on disk.
func (p Persistence) Volatile() bool { return p.Err == nil && !p.AOF && !p.RDB && !p.RDBUnknown }

// Persistence reads what the primary (each primary of a cluster; the one
// Sentinel names) keeps on disk: CONFIG GET appendonly and save, and where
// CONFIG is renamed or refused, INFO persistence (aof_enabled; the save
// points are then unknown).
func (s *Store) Persistence(ctx context.Context) []Persistence {
	ctx = context.WithValue(ctx, uncounted{}, true)
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var (
			mu  sync.Mutex
			out []Persistence
		)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			p := persistenceOf(ctx, c, c.Options().Addr)
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
			return nil
		})
		if err != nil && len(out) == 0 {
			out = append(out, Persistence{Err: err})
		}
		return out
	}
	addr := ""
	if c, ok := s.client.(*redis.Client); ok {
		addr = c.Options().Addr
		if addr == "FailoverClient" { // go-redis's name for a Sentinel-managed client
			addr = "the primary named by Sentinel"
		}
	}
	return []Persistence{persistenceOf(ctx, s.client, addr)}
}

// persistenceOf reads one server's persistence settings.
func persistenceOf(ctx context.Context, c redis.Cmdable, addr string) Persistence {
	p := Persistence{Addr: addr}
	aof, aofErr := c.ConfigGet(ctx, "appendonly").Result()
	save, saveErr := c.ConfigGet(ctx, "save").Result()
	if aofErr == nil && saveErr == nil && len(aof) > 0 {
		p.AOF = strings.EqualFold(aof["appendonly"], "yes")
		p.RDB = strings.TrimSpace(save["save"]) != ""
		return p
	}
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		p.Err = fmt.Errorf("CONFIG GET: %v; INFO persistence: %w", firstErr(aofErr, saveErr), err)
		return p
	}
	p.RDBUnknown = true
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
			p.AOF = v == "1"
		}
	}
	return p
}

// firstErr returns the first non-nil error, or a note that CONFIG GET gave
// nothing.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("no value")
}

// CheckPersistence logs, once, what Persistence finds worrying: one Warn
// line when a primary keeps nothing on disk (no AOF, no RDB snapshots; a
// restart of Redis then forgets every user, token and revocation), one
// when it keeps only snapshots (a restart undoes the revocations made
// since the last one), and an
// Info line when it could not be checked (CONFIG refused and AOF off, or
// nothing answered), and what it found per primary at Debug. On a
// cluster with the default durability it also decides how many replicas
// writes wait for (see decideReplicas), so that a cluster without
// replicas is reported at start-up. It never fails.
func (s *Store) CheckPersistence(ctx context.Context) {
	if s.autoDurability {
		if _, err := s.replicasWanted(ctx); err != nil {
			s.logger.Info("could not yet read the Redis Cluster's replicas; the first write decides how many it waits for",
				zap.Error(err))
		}
	}
	var volatile, snapshots, unknown []string
	var errs []error
	found := s.Persistence(ctx)
	for _, p := range found {
		switch {
		case p.Volatile():
			volatile = append(volatile, p.Addr)
		case p.Err == nil && !p.AOF && p.RDB:
			snapshots = append(snapshots, p.Addr)
		case p.Err != nil:
			unknown = append(unknown, p.Addr)
			errs = append(errs, p.Err)
		case !p.AOF && p.RDBUnknown:
			unknown = append(unknown, p.Addr)
		}
	}
	if len(volatile) > 0 {
		s.logger.Warn("Redis keeps nothing on disk (appendonly no, no save points): a restart of Redis forgets "+
			"every user, token, OAuth key, signing key and revocation; turn on appendonly yes",
			zap.Strings("primaries", volatile))
	}
	if len(snapshots) > 0 {
		s.logger.Warn("Redis keeps only snapshots on disk (appendonly no, save points set): a restart of Redis "+
			"goes back to the last snapshot, bringing back tokens revoked since; turn on appendonly yes",
			zap.Strings("primaries", snapshots))
	}
	if len(unknown) > 0 {
		s.logger.Info("could not check whether Redis keeps its data on disk (CONFIG GET refused or renamed, "+
			"and AOF is off or unknown); make sure the server persists (appendonly yes) or a restart forgets every token and revocation",
			zap.Strings("primaries", unknown), zap.Errors("errors", errs))
	}
	for _, p := range found {
		s.logger.Debug("checked what Redis keeps on disk", zap.String("primary", p.Addr),
			zap.Bool("aof", p.AOF), zap.Bool("rdb", p.RDB), zap.Bool("rdb_unknown", p.RDBUnknown), zap.Error(p.Err))
	}
}
