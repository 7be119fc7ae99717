// Package demo is tandem's bookstore: the classic example of PHP ORMs
// (authors, publishers, books), written through tandem to two databases.
package demo

import (
	"context"
	"fmt"
	"time"
)

// Author writes books.
type Author struct {
	ID        int64  `tandem:"id,pk,auto" json:"id"`
	FirstName string `tandem:"first_name,size=128" json:"first_name"`
	LastName  string `tandem:"last_name,size=128,index" json:"last_name"`
}

// Publisher publishes books; names are unique.
type Publisher struct {
	ID   int64  `tandem:"id,pk,auto" json:"id"`
	Name string `tandem:"name,size=128,unique" json:"name"`
}

// Book is one title in the store.
type Book struct {
	ID          int64     `tandem:"id,pk,auto" json:"id"`
	Title       string    `tandem:"title,size=255,index" json:"title"`
	ISBN        string    `tandem:"isbn,size=24,unique" json:"isbn"`
	Price       float64   `tandem:"price" json:"price"`
	Stock       int64     `tandem:"stock,default=1" json:"stock"`
	AuthorID    int64     `tandem:"author_id,index" json:"author_id"`
	PublisherID int64     `tandem:"publisher_id,index" json:"publisher_id"`
	CreatedAt   time.Time `tandem:"created_at,default=now" json:"created_at"`
	UpdatedAt   time.Time `tandem:"updated_at" json:"updated_at"`
}

// BeforeSave stamps the book. The time is decided here, once, in Go, and
// written as a value to every database: never now() in SQL.
func (b *Book) BeforeSave(context.Context) error {
	if b.Title == "" {
		return fmt.Errorf("book: title is required")
	}
	b.UpdatedAt = time.Now()
	return nil
}

// Models lists the bookstore's models, for Migrate.
func Models() []any { return []any{&Author{}, &Publisher{}, &Book{}} }
