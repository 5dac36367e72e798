package android.os;
public final class Bundle { public int getInt(String k, int d) { return d; } public String getString(String k) { return null; } }
