int lazy_add(int a) { return a + 1; }
