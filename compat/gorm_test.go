package compat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type gormCustomer struct {
	ID        uint `gorm:"primaryKey"`
	Name      string
	Email     string `gorm:"uniqueIndex;size:100"`
	CreatedAt time.Time
	UpdatedAt time.Time
	Orders    []gormOrder `gorm:"foreignKey:CustomerID;constraint:OnDelete:CASCADE"`
}

type gormOrder struct {
	ID         uint `gorm:"primaryKey"`
	CustomerID uint
	Total      int64
	CreatedAt  time.Time
}

type gormSet struct {
	ID uint  `gorm:"primaryKey"`
	V  int64 `gorm:"uniqueIndex"`
}

func gormOpen(t *testing.T, p *pair) *gorm.DB {
	t.Helper()
	d := gorm.Dialector(gormlite.OpenDB(p.db))
	if p.engine == "postgres" {
		d = postgres.New(postgres.Config{Conn: p.db})
	}
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// GORM with its own dialector over tandem's *sql.DB: AutoMigrate, creates
// with associations, updates, a transaction that rolls back, a cascade,
// then the fault run.
func TestGORM(t *testing.T) {
	onBoth(t, func(t *testing.T, p *pair) {
		ctx := context.Background()
		db := gormOpen(t, p).WithContext(ctx)
		if err := db.AutoMigrate(&gormCustomer{}, &gormOrder{}, &gormSet{}); err != nil {
			t.Fatal(err)
		}
		ann := gormCustomer{Name: "Ann", Email: "ann@example.com", Orders: []gormOrder{{Total: 10}, {Total: 20}}}
		if err := db.Create(&ann).Error; err != nil {
			t.Fatal(err)
		}
		if ann.ID == 0 || ann.Orders[1].ID == 0 {
			t.Fatalf("ids not set: %+v", ann)
		}
		if err := db.Create(&gormCustomer{Name: "Bob", Email: "bob@example.com", Orders: []gormOrder{{Total: 5}}}).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Model(&gormOrder{}).Where("total < ?", 15).Update("total", gorm.Expr("total * 3")).Error; err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&gormCustomer{Name: "Never", Email: "never@example.com"}).Error; err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Transaction = %v, want boom", err)
		}
		if err := db.Create(&gormCustomer{Name: "Dup", Email: "ann@example.com"}).Error; err == nil {
			t.Fatal("a duplicate email was accepted")
		}
		if err := db.Delete(&gormCustomer{}, "name = ?", "Bob").Error; err != nil {
			t.Fatal(err)
		}
		var customers []gormCustomer
		if err := db.Preload("Orders").Order("id").Find(&customers).Error; err != nil {
			t.Fatal(err)
		}
		if len(customers) != 1 || customers[0].Name != "Ann" || len(customers[0].Orders) != 2 ||
			customers[0].Orders[0].Total+customers[0].Orders[1].Total != 50 {
			t.Fatalf("customers = %+v, want Ann with orders of 30 and 20", customers)
		}
		var orders int64
		if err := db.Model(&gormOrder{}).Count(&orders).Error; err != nil || orders != 2 {
			t.Fatalf("orders = %d, %v; want 2 (Bob's deleted by the cascade)", orders, err)
		}
		p.identical(t)
		p.faultRun(t, "gorm_sets", func(ctx context.Context, v int64) error {
			return db.WithContext(ctx).Create(&gormSet{V: v}).Error
		})
	})
}
