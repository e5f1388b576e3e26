package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// benchPassword is the password of every bench user.
const benchPassword = "bench-password"

// tokensPerUser spreads pools over many users: a user's token list is
// read whole on every create, as the label and limit rules require.
const tokensPerUser = 100

// seeded is what the harness put in a store and knows the secrets of.
type seeded struct {
	hotPAT, hotLegacy string
	hotJWT            map[string]string   // alg -> one access token
	firstSight        map[string][]string // alg -> rounds*pool distinct tokens
	coldPATs          []string            // rounds*pool distinct PATs, never used
	revocable         []revocable         // PATs for the propagation measurement
	clientBasic       string              // "Basic ..." of the OAuth client
	userBasic         string              // "Basic ..." of the user that owns hotPAT
}

// revocable is a PAT with its owner and id.
type revocable struct {
	owner, id, secret string
}

// pools sizes the token pools of one run.
type pools struct {
	rounds     int
	firstSight map[string]int // per round
	cold       int            // per round
	revocable  int
}

// seed fills s (a fresh store) with users, tokens, an OAuth client and a
// keyring whose active key is HS256 and whose retiring keys are RS256 and
// ES256, so access tokens of all three verify at once.
func seed(ctx context.Context, s store.Store, p pools) (*seeded, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	sd := &seeded{hotJWT: map[string]string{}, firstSight: map[string][]string{}}
	users := 1 + (p.rounds*p.cold+p.revocable)/tokensPerUser
	for i := 0; i <= users; i++ {
		u := store.User{Name: fmt.Sprintf("bench%d", i), PasswordHash: string(hash), TokenLogin: true, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateUser(ctx, u); err != nil {
			return nil, fmt.Errorf("creating %s: %v", u.Name, err)
		}
	}
	sd.userBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte("bench0:"+benchPassword))
	if sd.hotPAT, err = putToken(ctx, s, "bench0", store.KindPAT, now); err != nil {
		return nil, err
	}
	if sd.hotLegacy, err = putToken(ctx, s, "bench0", store.KindLegacy, now); err != nil {
		return nil, err
	}
	cold, err := putTokens(ctx, s, p.rounds*p.cold+p.revocable, now)
	if err != nil {
		return nil, err
	}
	for _, t := range cold[:p.revocable] {
		sd.revocable = append(sd.revocable, t)
	}
	for _, t := range cold[p.revocable:] {
		sd.coldPATs = append(sd.coldPATs, t.secret)
	}

	clientID, err := token.NewClientID()
	if err != nil {
		return nil, err
	}
	secret, err := token.NewClientSecret()
	if err != nil {
		return nil, err
	}
	c := store.Client{ID: clientID, Name: "bench", SecretHash: token.Hash(secret), Scopes: []string{"read"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateClient(ctx, c); err != nil {
		return nil, err
	}
	sd.clientBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret))

	keys, err := plantKeyring(ctx, s, now)
	if err != nil {
		return nil, err
	}
	for alg, k := range keys {
		hot, err := mintAccessTokens(k, clientID, 1)
		if err != nil {
			return nil, err
		}
		sd.hotJWT[alg] = hot[0]
		if sd.firstSight[alg], err = mintAccessTokens(k, clientID, p.rounds*p.firstSight[alg]); err != nil {
			return nil, err
		}
	}
	return sd, nil
}

// putToken stores one token of kind for owner and returns its secret.
func putToken(ctx context.Context, s store.Store, owner, kind string, now time.Time) (string, error) {
	secret, err := token.NewPAT()
	if kind == store.KindLegacy {
		secret, err = token.NewLegacy()
	}
	if err != nil {
		return "", err
	}
	id, err := token.NewID()
	if err != nil {
		return "", err
	}
	t := store.Token{ID: id, Owner: owner, Kind: kind, Hash: token.Hash(secret), Enabled: true, CreatedAt: now, Scopes: []string{"read"}}
	return secret, s.CreateToken(ctx, t, 0)
}

// putTokens stores n PATs spread over the bench users, in parallel: each
// worker fills its own run of tokens, and so mostly its own users (16
// writers on one user's token set would only fight over its transaction).
func putTokens(ctx context.Context, s store.Store, n int, now time.Time) ([]revocable, error) {
	const workers = 16
	out := make([]revocable, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				owner := fmt.Sprintf("bench%d", 1+i/tokensPerUser)
				secret, err := token.NewPAT()
				if err != nil {
					errs <- err
					return
				}
				id, _ := token.NewID()
				t := store.Token{ID: id, Owner: owner, Kind: store.KindPAT, Hash: token.Hash(secret), Enabled: true, CreatedAt: now}
				if err := s.CreateToken(ctx, t, 0); err != nil {
					errs <- err
					return
				}
				out[i] = revocable{owner: owner, id: id, secret: secret}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// plantKeyring writes a keyring as a grace rotation would leave it: an
// active HS256 key and retiring RS256 and ES256 keys, all verifying.
func plantKeyring(ctx context.Context, s store.Store, now time.Time) (map[string]*jwt.Key, error) {
	doc, err := keyring.New(jwt.HS256, time.Hour, keyring.Policy{PublishDelay: time.Second}, now)
	if err != nil {
		return nil, err
	}
	for _, alg := range []string{jwt.RS256, jwt.ES256} {
		k, err := jwt.Generate(alg+"-bench", alg)
		if err != nil {
			return nil, err
		}
		m, err := k.Material()
		if err != nil {
			return nil, err
		}
		doc.Keys = append(doc.Keys, keyring.StoredKey{
			KID: k.ID, Alg: alg, State: keyring.StateRetiring, Material: m,
			CreatedAt: now, UsableAt: now, RetireAt: now.Add(24 * time.Hour),
		})
	}
	b, err := doc.Encode()
	if err != nil {
		return nil, err
	}
	if _, err := s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return b, nil }); err != nil {
		return nil, err
	}
	ks, err := keyring.Parse(doc)
	if err != nil {
		return nil, err
	}
	keys := map[string]*jwt.Key{jwt.HS256: ks.Signer()}
	for _, sk := range doc.Keys {
		if sk.State == keyring.StateRetiring {
			k, err := jwt.FromMaterial(sk.KID, sk.Alg, sk.Material)
			if err != nil {
				return nil, err
			}
			keys[sk.Alg] = k
		}
	}
	return keys, nil
}

// mintAccessTokens signs n distinct access tokens (distinct jti) for the
// client, as the token endpoint would, on all cores.
func mintAccessTokens(k *jwt.Key, clientID string, n int) ([]string, error) {
	out := make([]string, n)
	now := time.Now().Unix()
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	workers := 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				var b [16]byte
				_, _ = rand.Read(b[:])
				cl := accesstoken.Claims{
					Issuer: "tokengate", Subject: clientID, Audience: accesstoken.Audience{"tokengate"},
					Expiry: now + 3*3600, NotBefore: now - 60, IssuedAt: now - 60, ID: hex.EncodeToString(b[:]),
					ClientID: clientID, Scope: "read",
				}
				s, err := jwt.Sign(k, accesstoken.TokenType, cl)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// randomPATs returns n well-formed PATs (right checksum) that were never
// issued.
func randomPATs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i], _ = token.NewPAT()
	}
	return out
}

// wrongChecksums returns n PAT-shaped strings whose checksum is wrong.
func wrongChecksums(n int) []string {
	out := make([]string, n)
	for i := range out {
		t, _ := token.NewPAT()
		last := t[len(t)-1]
		repl := byte('0')
		if last == '0' {
			repl = '1'
		}
		out[i] = t[:len(t)-1] + string(repl)
		if token.Classify(out[i]) != token.Malformed {
			i-- // a one-character change kept a valid checksum: impossible for CRC32, but be sure
		}
	}
	return out
}
