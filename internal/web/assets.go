package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/tokengate/tokengate/internal/apierr"
)

//go:embed assets
var assetFiles embed.FS

// assetVersion changes with the assets' content; pages ask for
// assets/app.js?v=<version>, so a new build is never served stale code.
var assetVersion = func() string {
	h := sha256.New()
	err := fs.WalkDir(assetFiles, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assetFiles, p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		panic(err) // embedded at build time
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// serveAsset serves an embedded script, style sheet or image.
func (u *UI) serveAsset(req *request) error {
	name := req.r.PathValue("file")
	b, err := fs.ReadFile(assetFiles, "assets/"+name)
	if err != nil || name != path.Base(name) {
		return apierr.ErrNotFound
	}
	h := req.w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("ETag", `"`+assetVersion+`"`)
	if req.r.Header.Get("If-None-Match") == `"`+assetVersion+`"` {
		req.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	req.w.Write(b) // a client that went away needs no answer
	return nil
}
