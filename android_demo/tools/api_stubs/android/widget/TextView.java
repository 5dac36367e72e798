package android.widget;
public class TextView extends android.view.View {
  public TextView(android.content.Context c) { super(c); }
  public CharSequence getText() { return null; } public final void setText(CharSequence t) {}
  public void setTextColor(int c) {} public void setTextIsSelectable(boolean s) {}
  public android.graphics.Typeface getTypeface() { return null; } public void setTypeface(android.graphics.Typeface t) {}
  public int getInputType() { return 0; } public void setInputType(int t) {}
  public int getMinLines() { return 0; } public void setMinLines(int n) {}
  public CharSequence getHint() { return null; } public final void setHint(CharSequence h) {}
}
