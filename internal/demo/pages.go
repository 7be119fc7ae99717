package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tandemdb/tandem"
)

// The HTML pages: list, add, edit and delete books; and the operator
// dashboard. Served by the same binary from embedded templates; no
// front-end build.

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"price": func(p float64) string { return strconv.FormatFloat(p, 'f', 2, 64) },
}).ParseFS(templateFiles, "templates/*.html"))

// bookRow is a book as the list shows it.
type bookRow struct {
	Book
	Author, Publisher string
}

type booksPage struct {
	Books []bookRow
	Error string
	Form  bookForm
}

// bookForm is the add and edit form's fields, as typed.
type bookForm struct {
	ID                                    int64
	Title, ISBN, Price, Author, Publisher string
}

func (s *Server) bookPages(m *http.ServeMux) {
	m.HandleFunc("GET /books", func(w http.ResponseWriter, r *http.Request) { s.listBooks(w, r, bookForm{}, "") })
	m.HandleFunc("POST /books", s.addBook)
	m.HandleFunc("GET /books/{id}/edit", s.editBook)
	m.HandleFunc("POST /books/{id}", s.saveBook)
	m.HandleFunc("POST /books/{id}/delete", s.deleteBook)
}

func render(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		fmt.Fprintf(w, "<p>template %s: %s</p>", name, template.HTMLEscapeString(err.Error()))
	}
}

func (s *Server) listBooks(w http.ResponseWriter, r *http.Request, form bookForm, errMsg string) {
	ctx := r.Context()
	books, err := tandem.Find[Book](ctx, s.c, tandem.OrderBy("id"))
	if err != nil {
		errMsg = "cannot read the books: " + err.Error()
	}
	authors := map[int64]string{}
	if list, err := tandem.Find[Author](ctx, s.c); err == nil {
		for _, a := range list {
			authors[a.ID] = strings.TrimSpace(a.FirstName + " " + a.LastName)
		}
	}
	publishers := map[int64]string{}
	if list, err := tandem.Find[Publisher](ctx, s.c); err == nil {
		for _, p := range list {
			publishers[p.ID] = p.Name
		}
	}
	page := booksPage{Error: errMsg, Form: form}
	for _, b := range books {
		page.Books = append(page.Books, bookRow{Book: b, Author: authors[b.AuthorID], Publisher: publishers[b.PublisherID]})
	}
	code := http.StatusOK
	if errMsg != "" {
		code = http.StatusUnprocessableEntity
	}
	render(w, code, "books.html", page)
}

// readForm checks the form and returns the book it describes, with its
// author and publisher found or created in tx.
func (s *Server) readForm(r *http.Request) (bookForm, error) {
	f := bookForm{
		Title: strings.TrimSpace(r.FormValue("title")), ISBN: strings.TrimSpace(r.FormValue("isbn")),
		Price: strings.TrimSpace(r.FormValue("price")), Author: strings.TrimSpace(r.FormValue("author")),
		Publisher: strings.TrimSpace(r.FormValue("publisher")),
	}
	switch {
	case f.Title == "":
		return f, errors.New("title: required")
	case f.ISBN == "":
		return f, errors.New("isbn: required")
	case len([]rune(f.Title)) > 255:
		return f, errors.New("title: at most 255 characters")
	case len([]rune(f.ISBN)) > 24:
		return f, errors.New("isbn: at most 24 characters")
	}
	if f.Price != "" {
		if p, err := strconv.ParseFloat(f.Price, 64); err != nil || p < 0 {
			return f, fmt.Errorf("price: %q is not an amount", f.Price)
		}
	}
	if f.Author == "" {
		f.Author = "Anonymous"
	}
	if f.Publisher == "" {
		f.Publisher = "Tandem Press"
	}
	return f, nil
}

// store writes the form to book b in one mirrored transaction.
func (s *Server) store(ctx context.Context, f bookForm, b *Book) error {
	return s.c.Tx(ctx, func(tx *tandem.Tx) error {
		first, last, _ := strings.Cut(f.Author, " ")
		authors, err := tandem.Find[Author](ctx, tx, tandem.Eq("first_name", first), tandem.Eq("last_name", last))
		if err != nil {
			return err
		}
		var a Author
		if len(authors) > 0 {
			a = authors[0]
		} else {
			a = Author{FirstName: first, LastName: last}
			if err := tx.Save(ctx, &a); err != nil {
				return err
			}
		}
		p, err := findOrCreatePublisher(ctx, tx, f.Publisher)
		if err != nil {
			return err
		}
		b.Title, b.ISBN, b.AuthorID, b.PublisherID = f.Title, f.ISBN, a.ID, p.ID
		b.Price = 0
		if f.Price != "" {
			b.Price, _ = strconv.ParseFloat(f.Price, 64)
		}
		return tx.Save(ctx, b)
	})
}

func (s *Server) addBook(w http.ResponseWriter, r *http.Request) {
	f, err := s.readForm(r)
	if err == nil {
		err = s.store(r.Context(), f, &Book{})
	}
	if err != nil {
		s.listBooks(w, r, f, formError(err))
		return
	}
	http.Redirect(w, r, "/books", http.StatusSeeOther)
}

func formError(err error) string {
	var ce *tandem.ConstraintError
	if errors.As(err, &ce) && errors.Is(err, tandem.ErrDuplicateKey) && slices.Contains(ce.Columns, "isbn") {
		return "isbn: another book has this ISBN"
	}
	return err.Error()
}

func (s *Server) bookFromPath(w http.ResponseWriter, r *http.Request) (*Book, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err == nil {
		b, err := tandem.Get[Book](r.Context(), s.c, id)
		if err == nil {
			return b, true
		}
		if !errors.Is(err, tandem.ErrNotFound) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return nil, false
		}
	}
	http.Error(w, fmt.Sprintf("no book %q", r.PathValue("id")), http.StatusNotFound)
	return nil, false
}

func (s *Server) editBook(w http.ResponseWriter, r *http.Request) {
	b, ok := s.bookFromPath(w, r)
	if !ok {
		return
	}
	f := bookForm{ID: b.ID, Title: b.Title, ISBN: b.ISBN, Price: strconv.FormatFloat(b.Price, 'f', -1, 64)}
	if a, err := tandem.Get[Author](r.Context(), s.c, b.AuthorID); err == nil {
		f.Author = strings.TrimSpace(a.FirstName + " " + a.LastName)
	}
	if p, err := tandem.Get[Publisher](r.Context(), s.c, b.PublisherID); err == nil {
		f.Publisher = p.Name
	}
	render(w, http.StatusOK, "edit.html", map[string]any{"Form": f})
}

func (s *Server) saveBook(w http.ResponseWriter, r *http.Request) {
	b, ok := s.bookFromPath(w, r)
	if !ok {
		return
	}
	f, err := s.readForm(r)
	f.ID = b.ID
	if err == nil {
		err = s.store(r.Context(), f, b)
	}
	if err != nil {
		render(w, http.StatusUnprocessableEntity, "edit.html", map[string]any{"Form": f, "Error": formError(err)})
		return
	}
	http.Redirect(w, r, "/books", http.StatusSeeOther)
}

func (s *Server) deleteBook(w http.ResponseWriter, r *http.Request) {
	b, ok := s.bookFromPath(w, r)
	if !ok {
		return
	}
	if err := s.c.Delete(r.Context(), b); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, "/books", http.StatusSeeOther)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, "dashboard.html", nil)
}
