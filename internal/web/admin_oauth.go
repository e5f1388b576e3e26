package web

import (
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// oauthData is the OAuth keys page (seed 001).
type oauthData struct {
	Rows []oauthclient.ClientView
	// Created is a key just added by a form sent without script: its
	// secret is shown once, on this answer, which is never cached.
	Created *oauthclient.CreatedClient
	// MaxName is the longest key name, in characters.
	MaxName int
}

func (u *UI) oauthData(req *request) (*oauthData, error) {
	rows, err := u.opts.Clients.List(req.r.Context())
	if err != nil {
		return nil, err
	}
	return &oauthData{Rows: rows, MaxName: oauthclient.MaxNameLen}, nil
}

func (u *UI) oauthPage(req *request) error {
	d, err := u.oauthData(req)
	if err != nil {
		return err
	}
	return u.render(req, http.StatusOK, "admin_oauth", u.newView(req, "admin.oauth.title", "oauth", d))
}

// createdClient is the script's answer to "Add": the names app.js reads
// (client_id, client_secret). The secret is in no other answer.
type createdClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Name         string `json:"name"`
}

// createClient adds an OAuth key; its secret is shown once.
func (u *UI) createClient(req *request) error {
	f := req.r.PostForm
	created, err := u.opts.Clients.Create(req.r.Context(), oauthclient.NewClient{
		Name: f.Get("name"), AllowedIPs: splitList(f.Get("allowed_ips")), Scopes: splitList(f.Get("scopes")),
	})
	if err != nil {
		return err
	}
	if wantsJSON(req.r) {
		req.w.Header().Set("Cache-Control", "no-store")
		jsonbody.Write(req.w, http.StatusCreated, createdClient{created.ClientID, created.ClientSecret, created.Name})
		return nil
	}
	d, err := u.oauthData(req)
	if err != nil {
		return err
	}
	d.Created = &created
	return u.render(req, http.StatusCreated, "admin_oauth", u.newView(req, "admin.oauth.title", "oauth", d))
}

// updateClient switches a key on or off, or sets its name, allowed
// addresses and scopes.
func (u *UI) updateClient(req *request) error {
	f := req.r.PostForm
	var ch oauthclient.ClientChanges
	switch f.Get("action") {
	case "enable", "disable":
		on := f.Get("action") == "enable"
		ch.Enabled = &on
	case "edit":
		name := strings.TrimSpace(f.Get("name"))
		ips, scopes := splitList(f.Get("allowed_ips")), splitList(f.Get("scopes"))
		ch.Name, ch.AllowedIPs, ch.Scopes = &name, &ips, &scopes
	default:
		return errUnknownAction
	}
	v, err := u.opts.Clients.Update(req.r.Context(), req.r.PathValue("id"), ch)
	if err != nil {
		return err
	}
	return u.done(req, v, "/admin/oauth")
}

// deleteClient deletes a key: its tokens stop working at once.
func (u *UI) deleteClient(req *request) error {
	id := req.r.PathValue("id")
	if err := u.opts.Clients.Delete(req.r.Context(), id); err != nil {
		return err
	}
	return u.done(req, map[string]string{"deleted": id}, "/admin/oauth")
}
