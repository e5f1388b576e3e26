package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/backup"
)

// exportCommand is `store export [--output file]`.
func exportCommand(connect Connect) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export [--output <file>]",
		Short: "Write the whole store (users, token hashes, OAuth keys, signing keys, permissions, deny-list) as JSON",
		Long: `Write the whole store of the running gateway as one JSON document: users with
their password hashes, tokens as hashes (never secrets) with their last use,
OAuth keys with the hashes of their secrets, the signing keyring as stored,
the permission list and the deny-list. Web sessions and failure counters are
not exported. Keep the file as you keep the store: it lets anyone who has it
check passwords offline and, unless the keys are encrypted at rest, sign
access tokens.

Without --output the document goes to standard output. With --output it is
written to a new file (mode 0600) that replaces <file> only once the whole
export has arrived.`,
		Args: cobra.NoArgs,
	}
	output := cmd.Flags().StringP("output", "o", "", "the file to write (mode 0600); default: standard output")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		req, err := connect(c)
		if err != nil {
			return err
		}
		const uri = "/tokengate/store/export"
		resp, err := req(http.MethodGet, uri, nil)
		if err != nil {
			return readable(uri, err)
		}
		defer resp.Body.Close()
		var n backup.Counts
		if *output == "" {
			if n, err = copyExport(c.OutOrStdout(), resp.Body); err != nil {
				return fmt.Errorf("%v (what was written to standard output is incomplete)", err)
			}
		} else if n, err = writeExport(*output, resp.Body); err != nil {
			return err
		}
		to := "standard output"
		if *output != "" {
			to = *output
		}
		fmt.Fprintf(c.ErrOrStderr(), "exported %s to %s\n", n, to)
		return nil
	}
	return cmd
}

// copyExport copies an export from r to w, reading it as it goes, and
// fails if it is not a whole export (the gateway cuts the answer short
// when its store fails part-way).
func copyExport(w io.Writer, r io.Reader) (backup.Counts, error) {
	d, err := backup.Decode(io.TeeReader(r, w))
	if err != nil {
		return backup.Counts{}, fmt.Errorf("the export did not arrive whole (see the gateway's log): %v", err)
	}
	return d.Counts(), nil
}

// writeExport writes an export to a new file beside path (mode 0600) and
// renames it to path once it is whole and on disk.
func writeExport(path string, r io.Reader) (n backup.Counts, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return n, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return n, err
	}
	if n, err = copyExport(f, r); err != nil {
		return n, fmt.Errorf("%v (%s was not written)", err, path)
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	return n, os.Rename(f.Name(), path)
}

// importCommand is `store import [--input file]`.
func importCommand(connect Connect) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import [--input <file>]",
		Short: "Write an export into the gateway's store, which must be empty",
		Long: `Write a document made by 'tokengate store export' into the store of the running
gateway, from the embedded store to Redis or the other way round: tokens,
passwords, OAuth keys and signing keys keep working, so nobody needs new
tokens. The store must be empty (no users, OAuth keys, keyring or permission
list): import right after starting the gateway on a fresh store.

The whole document is checked before anything is written; an error names the
first problem. An import is not one transaction: if the store fails part-way,
the error says what was written, and the way to retry is to import again into
a fresh store.

Without --input the document is read from standard input.`,
		Args: cobra.NoArgs,
	}
	input := cmd.Flags().StringP("input", "i", "", "the file to read; default: standard input")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		var in io.Reader = c.InOrStdin()
		if *input != "" {
			f, err := os.Open(*input)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		req, err := connect(c)
		if err != nil {
			return err
		}
		resp, err := req(http.MethodPost, "/tokengate/store/import", in)
		if err != nil {
			return plain(err)
		}
		defer resp.Body.Close()
		var v struct {
			Imported backup.Counts `json:"imported"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
			return errors.New("the gateway's answer to the import is not readable: " + err.Error())
		}
		_, err = fmt.Fprintf(c.OutOrStdout(), "imported %s\n", v.Imported)
		return err
	}
	return cmd
}
