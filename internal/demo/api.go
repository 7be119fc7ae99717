package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tandemdb/tandem"
)

// The JSON API: /api/books, /api/authors and /api/publishers, each with
// GET and POST on the collection and GET, PUT and DELETE on /{id}. Bad
// input gets a 4xx whose body names the field ({"error": …, "field": …})
// and writes nothing.

// resource is one collection of the API.
type resource[T any] struct {
	name  string
	table string
	// apply sets the fields present in in on row; create requires every
	// required field. It returns the field at fault.
	apply func(ctx context.Context, c *tandem.Cluster, in map[string]json.RawMessage, row *T, create bool) (string, error)
	id    func(*T) int64
}

func (s *Server) api(m *http.ServeMux) {
	routes(m, s, resource[Book]{name: "books", table: "book", apply: applyBook, id: func(b *Book) int64 { return b.ID }})
	routes(m, s, resource[Author]{name: "authors", table: "author", apply: applyAuthor, id: func(a *Author) int64 { return a.ID }})
	routes(m, s, resource[Publisher]{name: "publishers", table: "publisher", apply: applyPublisher, id: func(p *Publisher) int64 { return p.ID }})
}

func routes[T any](m *http.ServeMux, s *Server, res resource[T]) {
	base := "/api/" + res.name
	m.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		rows, err := tandem.Find[T](r.Context(), s.c, tandem.OrderBy("id"))
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "", "read %s: %v", res.name, err)
			return
		}
		if rows == nil {
			rows = []T{}
		}
		writeJSON(w, http.StatusOK, map[string]any{res.name: rows})
	})
	m.HandleFunc("POST "+base, func(w http.ResponseWriter, r *http.Request) {
		in, field, err := readObject(r)
		if err != nil {
			fail(w, http.StatusBadRequest, field, "%v", err)
			return
		}
		var row T
		if field, err := res.apply(r.Context(), s.c, in, &row, true); err != nil {
			fail(w, http.StatusUnprocessableEntity, field, "%v", err)
			return
		}
		if err := s.c.Save(r.Context(), &row); err != nil {
			s.writeFailed(w, err)
			return
		}
		w.Header().Set("Location", fmt.Sprintf("%s/%d", base, res.id(&row)))
		writeJSON(w, http.StatusCreated, row)
	})
	one := func(w http.ResponseWriter, r *http.Request) (*T, bool) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			fail(w, http.StatusBadRequest, "id", "id %q is not a positive whole number", r.PathValue("id"))
			return nil, false
		}
		row, err := tandem.Get[T](r.Context(), s.c, id)
		if errors.Is(err, tandem.ErrNotFound) {
			fail(w, http.StatusNotFound, "id", "no %s with id %d", res.table, id)
			return nil, false
		}
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "", "read %s %d: %v", res.table, id, err)
			return nil, false
		}
		return row, true
	}
	m.HandleFunc("GET "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		if row, ok := one(w, r); ok {
			writeJSON(w, http.StatusOK, row)
		}
	})
	m.HandleFunc("PUT "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		row, ok := one(w, r)
		if !ok {
			return
		}
		in, field, err := readObject(r)
		if err != nil {
			fail(w, http.StatusBadRequest, field, "%v", err)
			return
		}
		if _, has := in["id"]; has {
			fail(w, http.StatusBadRequest, "id", "the id is in the URL; it cannot change")
			return
		}
		if field, err := res.apply(r.Context(), s.c, in, row, false); err != nil {
			fail(w, http.StatusUnprocessableEntity, field, "%v", err)
			return
		}
		if err := s.c.Save(r.Context(), row); err != nil {
			s.writeFailed(w, err)
			return
		}
		writeJSON(w, http.StatusOK, row)
	})
	m.HandleFunc("DELETE "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		row, ok := one(w, r)
		if !ok {
			return
		}
		if err := s.c.Delete(r.Context(), row); err != nil {
			s.writeFailed(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// writeFailed answers a write tandem refused: a unique value taken is the
// client's (409), anything else the cluster's (503).
func (s *Server) writeFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, tandem.ErrDuplicateKey) {
		field := "a unique value"
		var ce *tandem.ConstraintError
		if errors.As(err, &ce) && len(ce.Columns) > 0 {
			field = strings.Join(ce.Columns, ", ")
		}
		fail(w, http.StatusConflict, field, "%s is already taken", field)
		return
	}
	if errors.Is(err, tandem.ErrInvalidValue) {
		fail(w, http.StatusUnprocessableEntity, "", "%v", err)
		return
	}
	s.log.Warn("write failed", "err", err)
	fail(w, http.StatusServiceUnavailable, "", "the write failed: %v", err)
}

// readObject reads a JSON object of at most 64 KiB.
func readObject(r *http.Request) (map[string]json.RawMessage, string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		return nil, "", fmt.Errorf("read the body: %v", err)
	}
	if len(body) > 64<<10 {
		return nil, "", fmt.Errorf("the body is over 64 KiB")
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		return nil, "", fmt.Errorf("malformed JSON: want an object such as {\"title\": \"Dune\"}")
	}
	return in, "", nil
}

// fields reads the known fields of in into dst, by name; an unknown field
// or a value of the wrong type is an error naming it.
func fields(in map[string]json.RawMessage, dst map[string]any) (string, error) {
	for name, raw := range in {
		p, ok := dst[name]
		if !ok {
			known := make([]string, 0, len(dst))
			for k := range dst {
				known = append(known, k)
			}
			slices.Sort(known)
			return name, fmt.Errorf("unknown field %q (known: %s)", name, strings.Join(known, ", "))
		}
		if err := json.Unmarshal(raw, p); err != nil {
			return name, fmt.Errorf("%s: want %s", name, kindOf(p))
		}
	}
	return "", nil
}

func kindOf(p any) string {
	switch p.(type) {
	case **string:
		return "a string"
	case **float64:
		return "a number"
	case **int64:
		return "a whole number"
	}
	return "another type"
}

// text checks a required or optional string field.
func text(field string, v *string, required bool, size int) error {
	if v == nil {
		if required {
			return fmt.Errorf("%s is required", field)
		}
		return nil
	}
	t := strings.TrimSpace(*v)
	if required && t == "" {
		return fmt.Errorf("%s must not be empty", field)
	}
	if n := utf8.RuneCountInString(t); n > size {
		return fmt.Errorf("%s is %d characters long; at most %d", field, n, size)
	}
	*v = t
	return nil
}

func applyBook(ctx context.Context, c *tandem.Cluster, in map[string]json.RawMessage, b *Book, create bool) (string, error) {
	var title, isbn *string
	var price *float64
	var stock, author, publisher *int64
	if f, err := fields(in, map[string]any{"title": &title, "isbn": &isbn, "price": &price, "stock": &stock,
		"author_id": &author, "publisher_id": &publisher}); err != nil {
		return f, err
	}
	if err := text("title", title, create || title != nil, 255); err != nil {
		return "title", err
	}
	if err := text("isbn", isbn, create || isbn != nil, 24); err != nil {
		return "isbn", err
	}
	if price != nil && *price < 0 {
		return "price", fmt.Errorf("price must not be negative")
	}
	if stock != nil && *stock < 0 {
		return "stock", fmt.Errorf("stock must not be negative")
	}
	for _, ref := range []struct {
		field string
		id    *int64
		check func() error
	}{
		{"author_id", author, func() error { _, err := tandem.Get[Author](ctx, c, *author); return err }},
		{"publisher_id", publisher, func() error { _, err := tandem.Get[Publisher](ctx, c, *publisher); return err }},
	} {
		if ref.id == nil {
			if create {
				return ref.field, fmt.Errorf("%s is required", ref.field)
			}
			continue
		}
		if err := ref.check(); errors.Is(err, tandem.ErrNotFound) {
			return ref.field, fmt.Errorf("%s %d: no such row", ref.field, *ref.id)
		} else if err != nil {
			return ref.field, err
		}
	}
	set(&b.Title, title)
	set(&b.ISBN, isbn)
	set(&b.Price, price)
	set(&b.Stock, stock)
	set(&b.AuthorID, author)
	set(&b.PublisherID, publisher)
	return "", nil
}

func applyAuthor(_ context.Context, _ *tandem.Cluster, in map[string]json.RawMessage, a *Author, create bool) (string, error) {
	var first, last *string
	if f, err := fields(in, map[string]any{"first_name": &first, "last_name": &last}); err != nil {
		return f, err
	}
	if err := text("first_name", first, create || first != nil, 128); err != nil {
		return "first_name", err
	}
	if err := text("last_name", last, create || last != nil, 128); err != nil {
		return "last_name", err
	}
	set(&a.FirstName, first)
	set(&a.LastName, last)
	return "", nil
}

func applyPublisher(_ context.Context, _ *tandem.Cluster, in map[string]json.RawMessage, p *Publisher, create bool) (string, error) {
	var name *string
	if f, err := fields(in, map[string]any{"name": &name}); err != nil {
		return f, err
	}
	if err := text("name", name, create || name != nil, 128); err != nil {
		return "name", err
	}
	set(&p.Name, name)
	return "", nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
