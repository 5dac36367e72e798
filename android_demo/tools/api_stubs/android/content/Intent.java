package android.content;
public class Intent { public android.os.Bundle getExtras() { return null; } public String getStringExtra(String n) { return null; } }
