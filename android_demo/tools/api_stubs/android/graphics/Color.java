package android.graphics;
public class Color { public static final int DKGRAY = 0; public static int rgb(int r, int g, int b) { return 0; } }
