//! Limits of multi-row statements, the same on both backends.

/// Most bind parameters one statement carries: SQLite's default
/// `SQLITE_MAX_VARIABLE_NUMBER` (32,766 since 3.32), the lower of the two
/// backends' limits (PostgreSQL's is 65,535).
pub const MAX_BIND_PARAMS: usize = 32_766;

/// How many rows of `columns` bound values each fit in one statement.
pub const fn rows_per_statement(columns: usize) -> usize {
    assert!(columns > 0 && columns <= MAX_BIND_PARAMS, "columns per row");
    MAX_BIND_PARAMS / columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_statement_stays_within_the_bind_limit() {
        for columns in [1, 8, 12, 13, MAX_BIND_PARAMS] {
            let rows = rows_per_statement(columns);
            assert!(rows >= 1 && rows * columns <= MAX_BIND_PARAMS, "{columns}");
            assert!((rows + 1) * columns > MAX_BIND_PARAMS, "{columns}");
        }
    }
}
